"""Bring your own model: build, gate, verify and inspect bundles (``edgemed bundle``).

Needs the ``build`` extra (``pip install edgemed[build]``: the ``onnx`` package and a progress
bar); verifying and inspecting need nothing more than edgemed. docs/bring-your-own-model.md
walks from "I have model.onnx" to results at the fleet.
"""

from __future__ import annotations

from .build import BuildReport, build_bundle
from .gate import GateResult
from .spec import BuildSpec, Gate, load_spec
from .verify import inspect_bundle, verify_bundle

__all__ = [
    "BuildReport",
    "BuildSpec",
    "Gate",
    "GateResult",
    "build_bundle",
    "inspect_bundle",
    "load_spec",
    "verify_bundle",
]
