"""Machine description attached to every benchmark's JSON output."""

from __future__ import annotations

import os
import platform
from typing import Any

import edgemed
from edgemed.backends import probe


def machine_info() -> dict[str, Any]:
    hw = probe(runtimes=())
    return {
        "cpu": hw.cpu_model,
        "cores": os.cpu_count(),
        "cpu_flags": list(hw.cpu_flags),
        "python": platform.python_version(),
        "edgemed": edgemed.__version__,
    }
