"""The ``edgemed`` command (``main``), one module per concern:

- ``commands.py``  ``main``, the parser, and the device commands (doctor, models, run, bench,
                   sync, bridge, demo)
- ``fleet.py``     ``fleet serve`` (imports only the fleet side)
- ``models.py``    what ``doctor`` and ``models list|info`` report
- ``bench.py``     ``bench``: latency, throughput, stages, cold start, SDK overhead
- ``demo.py``      ``demo``: one device and a local fleet, end to end
- ``exit.py``      the exit status of each error class
- ``args.py``      argument types the commands share

Heavy modules are imported inside each command, keeping ``--help`` fast and ``fleet serve``
free of the device runtimes.
"""

from __future__ import annotations

from .commands import main

__all__ = ["main"]
