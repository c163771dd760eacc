"""Bring your own model: build, gate, sign, verify and inspect bundles (``edgemed bundle``).

Needs the ``build`` extra (``pip install edgemed[build]``: the ``onnx`` package and a progress
bar); signing, verifying and inspecting need nothing more than edgemed (devices check
signatures with ``edgemed.trust``, docs/signing.md). docs/bring-your-own-model.md
walks from "I have model.onnx" to results at the fleet.
"""

from __future__ import annotations

from .build import BuildReport, build_bundle
from .gate import GateResult
from .signing import generate_key, public_key_of, sign_bundle
from .spec import BuildSpec, Gate, load_spec
from .verify import inspect_bundle, verify_bundle

__all__ = [
    "BuildReport",
    "BuildSpec",
    "Gate",
    "GateResult",
    "build_bundle",
    "generate_key",
    "inspect_bundle",
    "load_spec",
    "public_key_of",
    "sign_bundle",
    "verify_bundle",
]
