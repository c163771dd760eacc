"""Which optional part of edgemed needs which extra, and the one error when one is missing.

A plain ``pip install edgemed`` is a device install with ONNX Runtime (on Linux aarch64, none:
Jetsons bring NVIDIA's onnxruntime-gpu, docs/jetson.md). Everything else is an extra, so a
device installs one runtime, not two, and the fleet installs no demo broker::

    openvino    OpenVINO (Intel CPU, iGPU, NPU)          vision      OpenCV: images, camera,
    onnxruntime ONNX Runtime where it is not default                 monitor-reader, image tasks
    fleet       the fleet server (API, PostgreSQL...)    demo        fleet + embedded broker
    fleet-nats  --jetstream workers                       fleet-amqp  --amqp workers
    formats     DICOM, EDF, WFDB files                   build       `edgemed bundle build`
    bridge      serial link to sensor microcontrollers

``require()`` raises :class:`~edgemed.errors.MissingDependencyError` naming the extra;
``status()`` is what ``edgemed doctor`` prints. Presence is checked with ``find_spec``, which
imports nothing (OpenVINO alone costs ~0.3 s to import).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec

from .errors import MissingDependencyError

__all__ = [
    "EXTRAS",
    "Extra",
    "extra_providing",
    "install_hint",
    "is_installed",
    "require",
    "status",
]


@dataclass(frozen=True)
class Extra:
    name: str
    modules: tuple[str, ...]  # importable names the extra provides
    adds: str  # what it is for, for doctor and error messages


EXTRAS: dict[str, Extra] = {
    e.name: e
    for e in (
        Extra("onnxruntime", ("onnxruntime",), "ONNX Runtime (CPU; the default runtime)"),
        Extra("openvino", ("openvino",), "OpenVINO (Intel CPU, iGPU, NPU)"),
        Extra("vision", ("cv2",), "OpenCV: image files, cameras, monitor-reader, image tasks"),
        Extra(
            "fleet",
            (
                "fastapi",
                "uvicorn",
                "psycopg",
                "jsonschema_rs",
                "hl7apy",
                "prometheus_client",
                "argon2",
            ),
            "the fleet server: API, dashboard, PostgreSQL, exports",
        ),
        Extra("demo", ("amqtt",), "the embedded MQTT broker of `edgemed demo`"),
        Extra("fleet-nats", ("nats",), "fleet workers on NATS JetStream (--jetstream)"),
        Extra("fleet-amqp", ("pika",), "fleet workers on RabbitMQ (--amqp)"),
        Extra("formats", ("pydicom", "pyedflib", "wfdb"), "DICOM, EDF and WFDB files"),
        Extra("build", ("onnx", "tqdm", "nncf"), "`edgemed bundle build`"),
        Extra("bridge", ("serial",), "the serial link to bedside microcontrollers"),
    )
}


def install_hint(extra: str) -> str:
    return f"pip install 'edgemed[{extra}]'"


def extra_providing(module: str | None) -> str | None:
    """The extra that installs the importable ``module`` ("fastapi.routing" -> "fleet")."""
    top = (module or "").split(".")[0]
    return next((e.name for e in EXTRAS.values() if top in e.modules), None)


def _missing(extra: Extra) -> list[str]:
    missing = []
    for module in extra.modules:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):  # a broken or half-removed package
            found = False
        if not found:
            missing.append(module)
    return missing


def is_installed(extra: str) -> bool:
    return not _missing(EXTRAS[extra])


def require(extra: str, purpose: str) -> None:
    """Raise MissingDependencyError when ``extra`` is not installed; ``purpose`` says what
    needed it ("model monitor-reader (task monitor-reader)")."""
    spec = EXTRAS[extra]
    missing = _missing(spec)
    if missing:
        raise MissingDependencyError(
            f"{purpose} needs {', '.join(missing)} ({spec.adds}), which this installation "
            f"lacks: {install_hint(extra)}",
            extra=extra,
        )


def status() -> list[tuple[Extra, list[str]]]:
    """Every extra with the modules of it this installation lacks ([] when installed)."""
    return [(extra, _missing(extra)) for extra in EXTRAS.values()]
