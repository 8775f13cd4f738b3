import sys

from obsy_web.service import main

sys.exit(main())
