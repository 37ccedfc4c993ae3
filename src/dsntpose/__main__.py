"""``python -m dsntpose`` is the ``dsntpose`` command."""

import sys

from dsntpose.cli import main

sys.exit(main())
