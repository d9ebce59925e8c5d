"""``python -m fade``: the ``fade`` command (what ``torchrun -m fade train ...`` runs)."""

import sys

from .cli import main

sys.exit(main())
