import sys

from obsy_scheduler.service import main

sys.exit(main())
