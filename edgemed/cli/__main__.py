"""``python -m edgemed.cli``: the ``edgemed`` command."""

from __future__ import annotations

import sys

from .commands import main

sys.exit(main())
