"""``python -m ppl_models``: the same as the ``ppl-models`` command."""

import sys

from ppl_models.cli import main

sys.exit(main())
