"""Exit status of the ``edgemed`` command by error class, so that a script can tell bad input
from a tampered model or a dead link without parsing messages. One table feeds ``main``, the
``--help`` epilog and (by hand) the README; a test runs every class through the command."""

from __future__ import annotations

import sys
import traceback

from ..errors import (
    BackendError,
    BridgeError,
    BuildError,
    EdgemedError,
    GoldenMismatchError,
    InputError,
    IntegrityError,
    ManifestError,
    ModelError,
    QuantizationGateError,
    SyncError,
)
from ..extras import extra_providing, install_hint

__all__ = ["EXIT_CODES", "EXIT_INTERNAL", "epilog", "exit_code", "report"]

EXIT_INSTALL, EXIT_INPUT, EXIT_MODEL, EXIT_INTEGRITY, EXIT_BACKEND = 1, 3, 4, 5, 6
EXIT_SYNC, EXIT_BRIDGE, EXIT_OS, EXIT_INTERNAL = 7, 8, 9, 70  # 70: EX_SOFTWARE (sysexits.h)
EXIT_BUILD, EXIT_GATE = 10, 11
# Most specific first: the first class an error is an instance of gives its status.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (InputError, EXIT_INPUT),
    (IntegrityError, EXIT_INTEGRITY),
    (ManifestError, EXIT_INTEGRITY),
    (GoldenMismatchError, EXIT_INTEGRITY),
    (ModelError, EXIT_MODEL),
    (BackendError, EXIT_BACKEND),
    (SyncError, EXIT_SYNC),
    (BridgeError, EXIT_BRIDGE),
    (QuantizationGateError, EXIT_GATE),
    (BuildError, EXIT_BUILD),
    (OSError, EXIT_OS),
    (ImportError, EXIT_INSTALL),  # as Python's own status when an import fails at start
)
_MEANINGS = (
    (0, "success"),
    (
        1,
        "installation: a module is missing or not built (ImportError, MissingDependencyError; "
        "the message names the extra to install)",
    ),
    (2, "usage: unknown command, option or argument"),
    (EXIT_INPUT, "bad input: text, file, JSON or signal (InputError, PayloadError)"),
    (EXIT_MODEL, "unknown model id, or a model that cannot be used (ModelError)"),
    (
        EXIT_INTEGRITY,
        "model integrity: sha256 or manifest wrong, golden outputs drift, or refused by the "
        "trust policy (IntegrityError, SignatureError, RollbackError, TrustPolicyError, "
        "ManifestError, GoldenMismatchError; `models verify` failures)",
    ),
    (EXIT_BACKEND, "backend or device not available, or the runtime failed (BackendError)"),
    (
        EXIT_SYNC,
        "sync: outbox, broker or fleet (SyncError, OutboxFullError, FleetConflictError; "
        "`demo` results not acknowledged)",
    ),
    (EXIT_BRIDGE, "serial bridge link (BridgeError, FrameError)"),
    (EXIT_BUILD, "`bundle build`: the model, build spec or data cannot make a bundle (BuildError)"),
    (EXIT_GATE, "`bundle build`: INT8 below the gate, no INT8 emitted (QuantizationGateError)"),
    (EXIT_OS, "a file, folder or port the command needs (OSError)"),
    (EXIT_INTERNAL, "internal error: a bug; rerun with -v for the traceback"),
)


def exit_code(exc: BaseException) -> int:
    return next((code for cls, code in EXIT_CODES if isinstance(exc, cls)), EXIT_INTERNAL)


def epilog() -> str:
    return "exit status:\n" + "\n".join(f"  {code:<3} {text}" for code, text in _MEANINGS)


def report(exc: Exception, *, verbose: bool) -> int:
    """One line on stderr (the traceback too with -v); return the exit status for ``exc``."""
    code = exit_code(exc)
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    extra = extra_providing(exc.name) if isinstance(exc, ModuleNotFoundError) else None
    if extra:  # an optional dependency imported deep inside a command: say which extra
        print(f"edgemed: {type(exc).__name__}: {exc}: {install_hint(extra)}", file=sys.stderr)
    elif isinstance(exc, EdgemedError | ImportError):
        print(f"edgemed: {type(exc).__name__}: {exc}", file=sys.stderr)
    elif code == EXIT_OS:
        print(f"edgemed: {exc}", file=sys.stderr)
    else:
        hint = "" if verbose else " (run `edgemed -v ...` for the traceback)"
        print(f"edgemed: internal error: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
    return code
