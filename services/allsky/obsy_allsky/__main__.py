import sys

from obsy_allsky.main import main

sys.exit(main())
