"""Stage 4: model outputs -> result fields (native kernels), one module per task."""

from __future__ import annotations
