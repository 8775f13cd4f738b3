import sys

from obsy_imaging.main import main

sys.exit(main())
