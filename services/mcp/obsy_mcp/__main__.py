import sys

from obsy_mcp.main import main

sys.exit(main())
