"""``python -m fastfeed.cli``: the ``fastfeed`` command."""

import sys

from fastfeed.cli import main

sys.exit(main())
