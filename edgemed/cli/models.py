"""What `edgemed doctor` and `edgemed models list|info` report, as plain data (their ``--json``)
and as text. The input contract says what a caller must pass each model: read from the
manifest, plus the task's fixed policy where the manifest has nothing to say (an image's BGR
order, a z-scored signal's units)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .. import extras
from .._version import __version__
from ..backends import Choice, autotune, candidates
from ..hardware import HardwareInfo
from ..manifest import Manifest
from ..tasks import find_task

__all__ = ["doctor_report", "input_contract", "model_info", "model_row", "print_info"]


def input_contract(m: Manifest) -> dict[str, Any]:
    """What a caller passes this model (its task's ``input_contract``); a task not installed, or
    one that states no contract, shows its manifest's preprocess section instead."""
    spec = find_task(m.task)
    if spec is None or spec.input_contract is None:
        return {"kind": "unknown", "preprocess": dict(m.preprocess)}
    return spec.input_contract(m)


def model_row(m: Manifest) -> dict[str, Any]:
    return {
        "id": m.id,
        "version": m.version,
        "task": m.task,
        "precision": m.precision,
        "backends": list(m.backends),
        "summary": m.summary,
    }


def model_info(m: Manifest) -> dict[str, Any]:
    return {
        **model_row(m),
        "license": m.license,
        "medical_device": m.medical_device,
        "source": vars(m.source),
        "input": input_contract(m),
        "model_inputs": [
            {"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "layout": t.layout}
            for t in m.inputs
        ],
        "metrics": dict(m.metrics),
        "folder": str(m.root),
    }


def _choice(c: Choice) -> dict[str, str]:
    return {"backend": c.backend, "device": c.device, "reason": c.reason}


def _tuned_first(m: Manifest, hw: HardwareInfo, usable: list[Choice]) -> list[Choice]:
    """The candidates in the order ``load()`` tries them: the one measured fastest on this
    machine first when autotune has figures for it (edgemed/backends/autotune.py; default threads)."""
    tuned = autotune.recall(autotune.key(m, hw, None)) if autotune.enabled() else None
    if tuned is None:
        if autotune.enabled() and len(usable) > 1:
            note = "; the first load measures every candidate and serves from the fastest"
            usable = [replace(usable[0], reason=usable[0].reason + note), *usable[1:]]
        return usable
    first = [c for c in usable if (c.backend, c.device) == (tuned.backend, tuned.device)]
    rest = [c for c in usable if c not in first]
    return [replace(c, reason=tuned.reason()) for c in first] + rest


def doctor_report(hw: HardwareInfo, manifests: list[Manifest]) -> dict[str, Any]:
    models = []
    for m in manifests:
        usable, skipped = candidates(m, hw)
        usable = _tuned_first(m, hw, usable)
        models.append(
            {
                "id": m.id,
                "version": m.version,
                "task": m.task,
                "precision": m.precision,
                "uses": _choice(usable[0]) if usable else None,
                "fallbacks": [_choice(c) for c in usable[1:]],
                "skipped": list(skipped),
                "needs": _missing_extras(m.task),
            }
        )
    return {
        "edgemed": __version__,
        "python": sys.version.split()[0],
        "machine": hw.machine,
        "cpu": {
            "model": hw.cpu_model,
            "cores": hw.cpu_count,
            "memory_gb": hw.memory_gb,
            "features": list(hw.cpu_flags),
        },
        "jetson": {"model": hw.jetson_model, "l4t_release": hw.l4t_release},
        "intel_npu": hw.intel_npu,
        "intel_igpu": hw.intel_igpu,
        "gpu": hw.gpu_name,
        "onnxruntime_providers": list(hw.onnxruntime_providers),
        "openvino_devices": list(hw.openvino_devices),
        "extras": {e.name: {"adds": e.adds, "missing": missing} for e, missing in extras.status()},
        "models": models,
    }


def _missing_extras(task: str) -> list[str]:
    """The extras a model of ``task`` needs that are not installed (it will not load)."""
    spec = find_task(task)
    return [e for e in (spec.extras if spec else ()) if not extras.is_installed(e)]


def _contract_lines(c: Mapping[str, Any]) -> list[str]:
    if c["kind"] == "tabular":
        lines = [f"  one row of {len(c['features'])} features, by name or in this order:"]
        lines += [
            f"    {f['name']:26} {f['unit'] or '':22} [{f['min']:g}, {f['max']:g}]"
            for f in c["features"]
        ]
        return [*lines, "  values outside a range are flagged in the result, not rejected"]
    skip = {"kind", "features"}
    return [f"  {key:22} {_plain(key, value)}" for key, value in c.items() if key not in skip]


def _plain(key: str, value: Any) -> str:
    if value is None:  # the rate: any in the range; other keys: the manifest has none
        return "any in the range" if key == "sampling_rate_hz" else "not stated"
    if isinstance(value, list):
        return (" to " if key.endswith("_range_hz") else ", ").join(
            f"{v:g}" if isinstance(v, float) else str(v) for v in value
        )
    return f"{value:g}" if isinstance(value, float) else str(value)


def print_info(info: Mapping[str, Any]) -> None:
    contract = info["input"]
    print(f"{info['id']} {info['version']}  ({info['task']}, {info['precision']})")
    print(f"  {info['summary']}")
    device = "a medical device" if info["medical_device"] else "not a medical device"
    print(f"  licence {info['license']}; {device}; backends {', '.join(info['backends'])}")
    print(f"  folder  {info['folder']}")
    print(f"input ({contract['kind']})")
    for line in _contract_lines(contract):
        print(line)
    print("metrics")
    for key, value in info["metrics"].items():
        print(f"  {key:22} {value}")
