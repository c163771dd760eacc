"""Is the device clock synchronised (NTP/PTP)? Sent with every result as ``clock_synced``."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import time

__all__ = ["clock_synced"]

_TIME_ERROR = 5  # adjtimex() state: the kernel clock is not synchronised
_RECHECK_S = 1.0  # the sync state changes over minutes; adjtimex via ctypes costs ~20 % of submit()
_cached: tuple[float, bool] = (float("-inf"), False)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # find_library spawns ldconfig: do it once, not on every result.
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


def clock_synced() -> bool:
    """True when the kernel reports a synchronised clock (Linux adjtimex); False if unknown.

    Read at most once per second; results within that second share the answer."""
    global _cached
    now = time.monotonic()
    if now - _cached[0] < _RECHECK_S:
        return _cached[1]
    synced = _read_adjtimex()
    _cached = (now, synced)
    return synced


def _read_adjtimex() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    if libc is None or not hasattr(libc, "adjtimex"):
        return False
    timex = ctypes.create_string_buffer(512)  # struct timex, modes=0: read only
    state = int(libc.adjtimex(timex))
    return state not in (-1, _TIME_ERROR)
