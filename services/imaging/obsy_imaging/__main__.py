import sys

from obsy_imaging.service import main

sys.exit(main())
