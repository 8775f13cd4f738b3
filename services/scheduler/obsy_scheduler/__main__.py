import sys

from obsy_scheduler.main import main

sys.exit(main())
