"""ICD-10-CM code index and retrieval evaluation for clinical-text-minilm (used by the recipe).

* Encoders: a small wrapper per engine (ONNX Runtime FP32 / INT8, OpenVINO INT8) that embeds
  texts one at a time (as ``edgemed.Pipeline`` serves them: dynamic INT8 results depend on the
  batch) or, for FP32 only, in length-sorted batches (FP32 rows are independent of padding).
* Embeddings are cached on disk under a key made of the engine, the model file's sha256 and the
  texts, so a re-run only recomputes what changed; the cache never changes a result.
* Recall: exact code and same 3-character category, top-k by the C++ cosine kernels
  (``edgemed.kernels.cosine_topk`` on float32 rows, ``cosine_topk_int8`` on the shipped index).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from edgemed import kernels

DIM = 384


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Encoder:
    """Embed texts with one engine; ``batch`` > 1 only for FP32 (rows independent)."""

    def __init__(
        self,
        name: str,
        model_files: Sequence[Path],
        run: Callable[[dict[str, np.ndarray]], np.ndarray],
        tok: Tokenizer,
        *,
        batch: int = 1,
    ) -> None:
        self.name, self.run, self.tok, self.batch = name, run, tok, batch
        digests = ",".join(sha256_file(f) for f in model_files)
        self.key = f"{name}:{digests}:batch{batch}"

    def tensors(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        enc = self.tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        return {"input_ids": ids, "attention_mask": mask}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), np.float32)
        order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
        for start in range(0, len(order), self.batch):
            rows = order[start : start + self.batch]
            out[rows] = self.run(self.tensors([texts[i] for i in rows]))
        return out


def ort_runner(session: Any) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    return lambda feeds: session.run(None, feeds)[0]


def ov_runner(compiled: Any) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    request = compiled.create_infer_request()

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        request.infer(feeds)
        return np.array(request.get_output_tensor(0).data)

    return run


class EmbeddingCache:
    """``cached(encoder, texts)``: embeddings from ``root`` when present, else computed and saved."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)

    def __call__(self, encoder: Encoder, texts: Sequence[str], label: str) -> np.ndarray:
        digest = hashlib.sha256(
            json.dumps([encoder.key, list(texts)], ensure_ascii=False).encode()
        ).hexdigest()[:24]
        path = self.root / f"{label}-{encoder.name}-{digest}.npy" if self.root else None
        if path is not None and path.exists():
            return np.load(path)
        t0 = time.perf_counter()
        emb = encoder.embed(texts)
        print(
            f"  embedded {len(texts)} {label} texts with {encoder.name} "
            f"in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        if path is not None:
            np.save(path, emb)
        return emb


def recall(top: np.ndarray, codes: Sequence[str], truth: Sequence[str]) -> dict[str, float]:
    """Exact-code recall@1/5/10 and same-category recall@10 of top-10 index rows per query."""
    exact = np.array(codes)[top] == np.array(truth)[:, None]
    cat = np.array([c[:3] for c in codes])[top] == np.array([t[:3] for t in truth])[:, None]
    return {
        "recall_at_1": float(exact[:, 0].mean()),
        "recall_at_5": float(exact[:, :5].any(axis=1).mean()),
        "recall_at_10": float(exact[:, :10].any(axis=1).mean()),
        "category_recall_at_10": float(cat[:, :10].any(axis=1).mean()),
    }


def topk_float(queries: np.ndarray, index: np.ndarray, k: int = 10) -> np.ndarray:
    return kernels.cosine_topk(kernels.l2_normalize(queries), index, k)[0]


def topk_int8(queries: np.ndarray, index: np.ndarray, k: int = 10) -> np.ndarray:
    return kernels.cosine_topk_int8(kernels.l2_normalize(queries), index, k)[0]


def query_latency(
    encoders: dict[str, Encoder], texts: Sequence[str], index: np.ndarray, *, rounds: int = 3
) -> dict[str, dict[str, float]]:
    """Median ms per query, interleaved across engines: tokenize + encode + int8 top-10 over
    the whole index (end to end), and the top-10 search alone."""
    samples: dict[str, list[float]] = {name: [] for name in encoders}
    search: list[float] = []
    for enc in encoders.values():  # warm-up
        for text in texts[:5]:
            enc.run(enc.tensors([text]))
    for _ in range(rounds):
        for text in texts:
            for name, enc in encoders.items():
                t0 = time.perf_counter()
                q = enc.run(enc.tensors([text]))
                t1 = time.perf_counter()
                kernels.cosine_topk_int8(kernels.l2_normalize(q), index, 10)
                t2 = time.perf_counter()
                samples[name].append((t2 - t0) * 1e3)
                search.append((t2 - t1) * 1e3)
    out = {name: {"query_ms": float(np.median(s))} for name, s in samples.items()}
    out["search"] = {"topk_ms": float(np.median(search))}
    return out
