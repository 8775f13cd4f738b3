import sys

from obsy_clouddetect.service import main

sys.exit(main())
