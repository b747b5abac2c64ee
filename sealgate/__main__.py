import sys

from sealgate.cli import main

sys.exit(main())
