"""``python -m sealgate.probe``: the same entry point as ``sealgate probe``."""

import sys

from . import main

sys.exit(main())
