import sys

from obsy_weather.service import main

sys.exit(main())
