import sys

from obsy_alpaca.service import main

sys.exit(main())
