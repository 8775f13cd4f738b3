import sys

from obsy_clouddetect.main import main

sys.exit(main())
