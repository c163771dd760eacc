"""Composition root of stages 1-5: input -> preprocess -> backend -> postprocess -> result."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from ._version import __version__
from .backends import Backend, create_backend
from .errors import ManifestError
from .manifest import Manifest, load_manifest
from .postprocess import EmbeddingPostprocessor
from .preprocess import TextPreprocessor
from .registry import find_model_dir
from .results import EmbeddingResult, Provenance, Timings

__all__ = ["Pipeline", "load"]


class Pipeline:
    """A loaded model ready to run; safe to call from several threads at once."""

    def __init__(self, manifest: Manifest, backend: Backend) -> None:
        self.manifest = manifest
        self.backend = backend
        self._pre = TextPreprocessor(manifest.path("tokenizer"), manifest.preprocess.max_tokens)
        has_labels = {"labels", "label_embeddings"} <= set(manifest.artifacts)
        self._post = EmbeddingPostprocessor(
            manifest.path("labels") if has_labels else None,
            manifest.path("label_embeddings") if has_labels else None,
            manifest.postprocess.top_k,
        )

    def __call__(self, text: str | bytes) -> EmbeddingResult:
        """preprocess -> backend.run -> postprocess -> result."""
        t0 = time.perf_counter()
        batch = self._pre([text])
        t1 = time.perf_counter()
        outputs = self.backend.run(batch.tensors())
        t2 = time.perf_counter()
        embeddings, nearest = self._post(outputs[self.manifest.outputs[0].name])  # type: ignore[arg-type]
        t3 = time.perf_counter()
        timings = Timings(
            preprocess_ms=(t1 - t0) * 1e3,
            inference_ms=(t2 - t1) * 1e3,
            postprocess_ms=(t3 - t2) * 1e3,
        )
        return EmbeddingResult(
            embedding=embeddings[0],
            nearest=nearest[0],
            n_tokens=batch.n_tokens[0],
            truncated=batch.truncated[0],
            provenance=self._provenance(batch.input_sha256[0], timings, time.time()),
        )

    def batch(self, texts: Sequence[str | bytes]) -> list[EmbeddingResult]:
        """Run several inputs, one backend call each.

        Not padded into one tensor on purpose: dynamic INT8 quantises activations per tensor,
        so a batched input's embedding would depend on its neighbours (measured: cosine 0.990
        against the same text run alone). A result must not change with what else was queued.
        """
        return [self(text) for text in texts]

    def _provenance(self, input_sha256: str, timings: Timings, now: float) -> Provenance:
        m = self.manifest
        return Provenance(
            model_id=m.id,
            model_version=m.version,
            model_sha256=m.model_sha256,
            backend=self.backend.name,
            device=self.backend.device,
            precision=m.precision,
            input_sha256=input_sha256,
            input_kind="text",
            timings=timings,
            edgemed_version=__version__,
            created_at=now,
        )

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"Pipeline({m.id}@{m.version}, {self.backend.name}/{self.backend.device}/{m.precision})"
        )


def load(
    model: str | Path,
    *,
    backend: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    verify: bool = True,
) -> Pipeline:
    """Load a bundled model by id (or a model folder by path), checking every artifact's sha256."""
    model_dir = Path(model) if isinstance(model, Path) else find_model_dir(model)
    manifest = load_manifest(model_dir, verify=verify)
    if isinstance(model, str) and manifest.id != model:
        raise ManifestError(f"folder {model_dir.name} holds model {manifest.id!r}, not {model!r}")
    return Pipeline(
        manifest, create_backend(manifest, backend=backend, device=device, threads=threads)
    )
