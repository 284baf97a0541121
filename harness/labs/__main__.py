"""`python -m harness.labs regenerate|check docs/labs` (harness.labs.main)."""

import sys

from harness.labs import main

sys.exit(main())
