"""`python -m harness.components`: list, build or locate the real components."""

import sys

from harness.components import main

sys.exit(main())
