"""`python -m trio_controller.programs.sharder`: the sharder command."""

import sys

from trio_controller.programs.sharder.cli import main

sys.exit(main())
