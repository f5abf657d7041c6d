import sys

from trio_controller.programs.pods.cli import main

sys.exit(main())
