import sys

from secretswitch.cli import main

sys.exit(main())
