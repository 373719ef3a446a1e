"""`python -m berth`: the berth command (berth/cli)."""

from berth.cli.main import main

raise SystemExit(main())
