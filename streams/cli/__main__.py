"""``python -m streams.cli``: the ``profilestream`` command."""

import sys

from streams.cli.main import main

sys.exit(main())
