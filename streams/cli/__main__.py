"""`python -m streams.cli ...`: the `umh` command line without the console script."""

import sys

from streams.cli import main

sys.exit(main())
