import sys

from trio_controller.cli import main

sys.exit(main())
