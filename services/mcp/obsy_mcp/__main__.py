import sys

from obsy_mcp.service import main

sys.exit(main())
