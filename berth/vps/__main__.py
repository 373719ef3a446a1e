"""python -m berth.vps: see berth.vps.cli."""

import sys

from berth.vps.cli import main

sys.exit(main())
