import sys

from obsy_allsky.service import main

sys.exit(main())
