import sys

from obsy_web.main import main

sys.exit(main())
