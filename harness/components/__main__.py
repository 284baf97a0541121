"""`python -m harness.components`: list, build or locate the real components."""

import sys

from harness.components.cli import main

sys.exit(main())
