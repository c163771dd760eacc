"""The one exception tree of edgemed. Foreign errors are translated once, at each boundary.

::

    EdgemedError
    ├── InputError (also ValueError)      bad caller input: text, arrays, files, payloads
    │   ├── PayloadError                  a wire message that is not a valid edgemed payload
    │   └── AccountError                  a fleet user or API token request is refused
    ├── ModelError                        a model cannot be found or used
    │   ├── ManifestError                 manifest.json is malformed or inconsistent
    │   ├── IntegrityError                an artifact is missing, not a plain file inside the
    │   │   │                             bundle, or its sha256 does not match
    │   │   ├── SignatureError            unsigned where a trust policy forbids it, unknown or
    │   │   │                             revoked key, bad signature, signed another manifest
    │   │   ├── RollbackError             older than a version this device served (no signed
    │   │   │                             rollback), or versions that cannot be ordered
    │   │   └── TrustPolicyError          the trust policy or rollback state cannot be read
    │   └── GoldenMismatchError           golden-vector outputs drift beyond tolerance here
    ├── BackendError                      the inference runtime failed
    │   └── BackendUnavailableError       the requested runtime/device is not installed/present
    ├── SyncError                         outbox / MQTT / fleet sync failure
    │   ├── OutboxFullError               the outbox refuses new results (never a silent drop)
    │   └── FleetConflictError            another store's fleet already serves this broker
    ├── MissingDependencyError (also ImportError)  an optional part is not installed: the
    │                                     message names the extra (`pip install 'edgemed[x]'`)
    ├── BridgeError                       serial link to a sensor microcontroller
    │   └── FrameError                    a frame failed to decode
    └── BuildError                        `edgemed bundle build` cannot make the bundle asked for
        └── QuantizationGateError         the INT8 model falls short of the gate: not emitted
"""

from __future__ import annotations

__all__ = [
    "AccountError",
    "BackendError",
    "BackendUnavailableError",
    "BridgeError",
    "BuildError",
    "EdgemedError",
    "FleetConflictError",
    "FrameError",
    "GoldenMismatchError",
    "InputError",
    "IntegrityError",
    "ManifestError",
    "MissingDependencyError",
    "ModelError",
    "OutboxFullError",
    "PayloadError",
    "QuantizationGateError",
    "RollbackError",
    "SignatureError",
    "SyncError",
    "TrustPolicyError",
]


class EdgemedError(Exception):
    """Base of every error edgemed raises on purpose."""


class InputError(EdgemedError, ValueError):
    """The caller's input cannot be processed; the message names what is wrong."""


class AccountError(InputError):
    """A fleet account request is refused: unknown role or scope, weak password, user exists."""


class PayloadError(InputError):
    """A wire message is not a valid edgemed payload (schema, JSON, fields)."""


class ModelError(EdgemedError):
    """A model cannot be found, loaded or run as its manifest describes."""


class ManifestError(ModelError):
    """A manifest.json is malformed, has unknown keys, or contradicts itself."""


class IntegrityError(ModelError):
    """A model artifact is missing, is a symlink or lies outside its bundle folder, or its
    sha256 differs from the manifest; under a trust policy, also a file the manifest does not
    list."""


class SignatureError(IntegrityError):
    """Under a trust policy, the bundle's ``signature.json`` is missing (and unsigned bundles
    are not allowed), malformed, made with a key the policy does not trust or has revoked,
    does not verify, or was made for another manifest (docs/signing.md)."""


class RollbackError(IntegrityError):
    """Under a trust policy with anti-rollback state, the bundle's version is lower than one
    this device has served and its signature grants no rollback to it, or a version is not a
    semantic version and cannot be ordered."""


class TrustPolicyError(IntegrityError):
    """The trust policy or the anti-rollback state file cannot be read or written: nothing is
    trusted (fail closed); the message names the file and what is wrong."""


class BackendError(EdgemedError):
    """The inference runtime failed while loading or running a model."""


class BackendUnavailableError(BackendError):
    """The requested backend or device is not available; the message says what to install."""


class SyncError(EdgemedError):
    """Result sync (outbox, MQTT, fleet) failed."""

    # Publisher.submit_many / Outbox.put_many: the seqs stored before the refused result
    # (always a prefix of the results given); () from every other call.
    stored_seqs: tuple[int, ...] = ()


class OutboxFullError(SyncError):
    """The outbox is at its byte or age bound and refuses new results."""


class FleetConflictError(SyncError):
    """A fleet that writes to another store already serves this broker (no silent split)."""


class BridgeError(EdgemedError):
    """The serial link to a bedside microcontroller failed."""


class FrameError(BridgeError):
    """A serial frame could not be decoded (CRC, length, framing)."""


class GoldenMismatchError(ModelError):
    """On this machine and backend, the model's outputs on its golden inputs drift beyond the
    manifest's tolerance: it must not serve."""


class MissingDependencyError(EdgemedError, ImportError):
    """A feature needs an optional dependency this installation lacks; the message names the
    extra that adds it (``pip install 'edgemed[vision]'``...) and ``extra`` holds its name."""

    def __init__(self, message: str, *, extra: str = "") -> None:
        super().__init__(message)
        self.extra = extra


class BuildError(EdgemedError):
    """A bundle cannot be built from what was given: the ONNX file, the build spec, or the
    calibration and evaluation data (the message says which and why)."""


class QuantizationGateError(BuildError):
    """The INT8 model disagrees with its FP32 original, or loses too much of the metric, on the
    evaluation set: no INT8 artifact is emitted (ask for FP32 instead to ship the original)."""
