"""`python -m bench [--quick] [--big] [--keep]` from the project root."""

import sys

from bench.runner import main

sys.exit(main())
