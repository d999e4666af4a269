"""``python -m pdn`` is the ``pdn`` command."""

import sys

from .cli.main import main

sys.exit(main())
