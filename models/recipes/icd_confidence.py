"""Calibrate and evaluate the doubt on clinical-text-minilm's ICD-10-CM suggestions.

Runs on a built bundle (no torch: both INT8 engines are served by ``edgemed.load``) and is the
last step of ``clinical_text_minilm.py``. Deterministic for a given bundle and CPU.

Data (never in the index: the index embeds code descriptions only, icd10cm.py):
* the ICD-10-CM inclusion terms (icd10cm.queries), split by 3-character category with a hash
  of the category: CALIBRATION categories fit the confidence model and choose the operating
  point; EVALUATION categories are held out (no category of theirs was seen in fitting);
* ``tests/fixtures/icd_heldout.jsonl``: bedside phrases written by hand for this evaluation
  (plain findings, abbreviations, negated, pending, uncertain, hypothetical, numbers with
  units, mixed), each with its acceptable categories; used for evaluation only.

Steps:
1. embed every query with each INT8 engine through the pipeline (cached per engine);
2. fit P(first suggestion's category is right) = sigmoid(w . [top1, margin, category_margin]
   + b) on the calibration split, both engines pooled (the probability serves either);
3. min_margin: the smallest top1-top2 margin above which the engines' first suggestions
   differed for at most MAX_FLIP_RATE of calibration queries;
4. threshold: the lowest probability at which the calibration split's confident suggestions
   (every other rule passing) reach TARGET_PRECISION category precision;
5. evaluate on the evaluation split and the phrases: coverage (share given a confident
   suggestion), category and exact-code precision, engine disagreement; write
   code_confidence.json, a 1,000-query evaluation sample for the tests, the metrics, the
   card section and the manifest (version bumped, sha256 refreshed).

Run:  PYTHONPATH=<dir with simple_icd_10_cm> python models/recipes/icd_confidence.py
      [--bundle models/clinical-text-minilm] [--cache /work/cache-icd/confidence]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

import icd10cm  # noqa: E402

import edgemed  # noqa: E402
from edgemed import kernels  # noqa: E402
from edgemed.manifest import BACKEND_ARTIFACTS  # noqa: E402
from edgemed.tasks.text_embedding import code_confidence as cc  # noqa: E402

VERSION = "1.2.0"  # 1.2: code_confidence.json (calibrated confidence, abstention)
ENGINES = ("onnxruntime", "openvino")
TARGET_PRECISION = 0.95  # category precision of confident suggestions on the calibration split
MAX_FLIP_RATE = 0.005  # engines' first suggestions may differ this often above min_margin
SAMPLE_SIZE = 1000  # evaluation-split queries shipped for the tests
PHRASES = ROOT / "tests" / "fixtures" / "icd_heldout.jsonl"
CARD_BEGIN = "<!-- code-confidence:begin -->"
CARD_END = "<!-- code-confidence:end -->"


def is_calibration(category: str) -> bool:
    return hashlib.sha256(category.encode()).digest()[0] % 2 == 0


def embed(bundle: Path, engine: str, texts: list[str], cache: Path | None) -> np.ndarray:
    with edgemed.load(bundle, backend=engine, device="cpu", threads=1) as pipe:
        files = [pipe.manifest.artifacts[r].sha256 for r in BACKEND_ARTIFACTS[engine]]
        digest = hashlib.sha256(json.dumps([engine, files, texts]).encode()).hexdigest()[:24]
        path = cache / f"queries-{engine}-{digest}.npy" if cache else None
        if path is not None and path.exists():
            return np.load(path)
        t0 = time.perf_counter()
        out = np.stack([pipe(t).embedding for t in texts]).astype(np.float32)
        print(f"  embedded {len(texts)} queries with {engine} in {time.perf_counter() - t0:.0f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


class Ranker:
    """Top-k over the bundle's int8 index, exactly as the postprocessor ranks."""

    def __init__(self, bundle: Path, top_k: int) -> None:
        labels = json.loads((bundle / "labels.json").read_text())
        self.codes = [d["code"] for d in labels]
        self.texts = [d["text"] for d in labels]
        self.index = np.load(bundle / "label_index_int8.npy")
        self.top_k = top_k

    def __call__(self, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top, score = kernels.cosine_topk_int8(kernels.l2_normalize(emb), self.index, self.top_k)
        return top, score


def feature_matrix(ranker: Ranker, top: np.ndarray, score: np.ndarray) -> np.ndarray:
    return np.array(
        [
            cc.features([ranker.codes[i] for i in row], [float(s) for s in srow]).vector()
            for row, srow in zip(top, score, strict=True)
        ]
    )


def fit(x: np.ndarray, y: np.ndarray) -> tuple[list[float], float]:
    model = LogisticRegression(C=100.0, max_iter=1000).fit(x, y)
    return [float(w) for w in model.coef_[0]], float(model.intercept_[0])


def eligible(
    ranker: Ranker,
    texts: list[str],
    ranked: tuple[np.ndarray, np.ndarray],
    open_gate: cc.CodeConfidence,
) -> np.ndarray:
    """Queries every rule but the probability threshold lets through (assertion,
    plausibility, margin): judged with a calibration whose threshold accepts everything."""
    out = []
    for text, row, srow in zip(texts, *ranked, strict=True):
        verdict = cc.judge(
            text,
            [ranker.codes[i] for i in row],
            [ranker.texts[i] for i in row],
            [float(s) for s in srow],
            open_gate,
        )
        out.append(verdict.confident)
    return np.array(out)


def flip_table(margin: np.ndarray, flips: np.ndarray) -> list[dict[str, float]]:
    edges = [0.0, 0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.1, 1.0]
    rows = []
    for lo, hi in itertools.pairwise(edges):
        sel = (margin >= lo) & (margin < hi)
        rows.append(
            {
                "lo": lo,
                "hi": hi,
                "n": int(sel.sum()),
                "flip": float(flips[sel].mean() if sel.any() else 0),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=HERE.parent / "clinical-text-minilm")
    parser.add_argument("--cache", default="/work/cache-icd/confidence")
    args = parser.parse_args()
    calibrate(args.bundle, Path(args.cache) if args.cache else None)


def calibrate(bundle: Path, cache: Path | None) -> dict[str, Any]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    top_k = int(manifest["postprocess"]["top_k"])
    ranker = Ranker(bundle, top_k)
    pairs = icd10cm.queries(icd10cm.load_leaves())
    texts, truth = [t for t, _ in pairs], [c for _, c in pairs]
    calib = np.array([is_calibration(c[:3]) for c in truth])
    ranked = {e: ranker(embed(bundle, e, texts, cache)) for e in ENGINES}
    tcat = np.array([c[:3] for c in truth])
    codes = np.array(ranker.codes)
    right = {e: codes[top[:, 0]] for e, (top, _) in ranked.items()}
    cat_ok = {e: np.array([c[:3] for c in right[e]]) == tcat for e in ENGINES}
    exact_ok = {e: right[e] == np.array(truth) for e in ENGINES}
    flips = right["onnxruntime"] != right["openvino"]
    feats = {e: feature_matrix(ranker, *ranked[e]) for e in ENGINES}
    margin = {e: feats[e][:, 1] for e in ENGINES}

    # 2. Platt model on the calibration split, engines pooled.
    x = np.concatenate([feats[e][calib] for e in ENGINES])
    y = np.concatenate([cat_ok[e][calib] for e in ENGINES])
    weights, intercept = fit(x, y)
    # 3. min_margin from engine disagreement on the calibration split.
    grid = np.round(np.arange(0.0, 0.1001, 0.005), 3)
    m_cal = np.concatenate([margin[e][calib] for e in ENGINES])
    f_cal = np.concatenate([flips[calib]] * len(ENGINES))
    min_margin = float(next(d for d in grid if f_cal[m_cal >= d].mean() <= MAX_FLIP_RATE))
    # 4. threshold: rules first (probability gate open), then the lowest probability that
    # reaches the target precision on the calibration split.
    open_gate = cc.CodeConfidence(
        schema=cc.CONFIDENCE_SCHEMA,
        target="category",
        features=cc.FEATURE_NAMES,
        weights=tuple(weights),
        intercept=intercept,
        threshold=1e-300,
        min_margin=min_margin,
        top_k=top_k,
        fitted_on="",
    )
    ok = {e: eligible(ranker, texts, ranked[e], open_gate) for e in ENGINES}
    prob = {e: 1 / (1 + np.exp(-(feats[e] @ np.array(weights) + intercept))) for e in ENGINES}
    p_cal = np.concatenate([prob[e][calib & ok[e]] for e in ENGINES])
    y_cal = np.concatenate([cat_ok[e][calib & ok[e]] for e in ENGINES])
    threshold = choose_threshold(p_cal, y_cal)
    conf = cc.CodeConfidence(
        schema=cc.CONFIDENCE_SCHEMA,
        target="category",
        features=cc.FEATURE_NAMES,
        weights=tuple(round(w, 6) for w in weights),
        intercept=round(intercept, 6),
        threshold=round(threshold, 4),
        min_margin=min_margin,
        top_k=top_k,
        fitted_on=f"{int(calib.sum())} ICD-10-CM inclusion terms of the calibration categories "
        f"(sha256(category)[0] even), {'+'.join(ENGINES)} INT8 pooled; target category "
        f"precision {TARGET_PRECISION}",
    )
    confident = {e: ok[e] & (prob[e] >= conf.threshold) for e in ENGINES}

    metrics: dict[str, Any] = {
        "confidence_threshold": conf.threshold,
        "confidence_min_margin": conf.min_margin,
        "confidence_target_precision": TARGET_PRECISION,
        "confidence_calibration_queries": int(calib.sum()),
        "confidence_heldout_queries": int((~calib).sum()),
        "confidence_heldout_categories": len(set(tcat[~calib])),
        "top1_disagreement_rate": round(float(flips.mean()), 4),
        "top1_category_disagreement_rate": round(
            float(
                (
                    np.array([c[:3] for c in right["onnxruntime"]])
                    != np.array([c[:3] for c in right["openvino"]])
                ).mean()
            ),
            4,
        ),
    }
    for e in ENGINES:
        for name, sel in (("calibration", calib), ("heldout", ~calib)):
            c = confident[e] & sel
            metrics[f"{name}_terms_coverage_{e}"] = round(float(c.sum() / sel.sum()), 4)
            metrics[f"{name}_terms_category_precision_{e}"] = round(float(cat_ok[e][c].mean()), 4)
            metrics[f"{name}_terms_exact_precision_{e}"] = round(float(exact_ok[e][c].mean()), 4)
        metrics[f"heldout_terms_confident_{e}"] = int((confident[e] & ~calib).sum())
        metrics[f"heldout_terms_confident_disagreeing_{e}"] = int(
            (confident[e] & ~calib & flips).sum()
        )
        metrics[f"heldout_terms_ece_{e}"] = round(ece(prob[e][~calib], cat_ok[e][~calib]), 4)
    table = flip_table(margin["onnxruntime"][~calib], flips[~calib])
    reliability = reliability_table(prob["onnxruntime"][~calib], cat_ok["onnxruntime"][~calib])
    metrics.update(ship_sample(bundle, texts, truth, ~calib, confident, cat_ok))
    (bundle / "code_confidence.json").write_text(
        json.dumps(
            {**conf.__dict__, "features": list(conf.features), "weights": list(conf.weights)},
            indent=1,
        )
        + "\n"
    )
    update_manifest(bundle, manifest, metrics)  # the pipeline now serves the calibration
    metrics.update(evaluate_phrases(bundle))
    write_card_section(bundle, metrics, conf, table, reliability)
    update_manifest(bundle, manifest, metrics)
    print(json.dumps(metrics, indent=1))
    return metrics


def choose_threshold(p: np.ndarray, y: np.ndarray, min_count: int = 50) -> float:
    """The lowest probability t at which the suggestions with p >= t reach TARGET_PRECISION
    (cumulative precision, highest probabilities first; at least ``min_count`` of them, so a
    handful of queries cannot set the operating point)."""
    order = np.argsort(-p, kind="stable")
    precision = np.cumsum(y[order]) / np.arange(1, len(order) + 1)
    ok = np.where(precision >= TARGET_PRECISION)[0]
    ok = ok[ok >= min_count - 1]
    if not len(ok):
        raise SystemExit(f"no operating point reaches {TARGET_PRECISION:.0%} precision")
    return float(p[order][ok[-1]])


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    return float(
        sum(
            abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).mean()
            for b in range(bins)
            if (idx == b).any()
        )
    )


def reliability_table(p: np.ndarray, y: np.ndarray) -> list[dict[str, float]]:
    edges = [0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0001]
    out = []
    for lo, hi in itertools.pairwise(edges):
        sel = (p >= lo) & (p < hi)
        if sel.any():
            out.append(
                {
                    "lo": lo,
                    "hi": min(hi, 1.0),
                    "n": int(sel.sum()),
                    "p": float(p[sel].mean()),
                    "right": float(y[sel].mean()),
                }
            )
    return out


def evaluate_phrases(bundle: Path) -> dict[str, Any]:
    """The hand-written phrases through the whole pipeline on each engine."""
    rows = [json.loads(line) for line in PHRASES.read_text().splitlines() if line.strip()]
    out: dict[str, Any] = {"phrases": len(rows)}
    affirmed = [r for r in rows if r["assertion"] in ("present", "mixed")]
    out["phrases_affirmed"] = len(affirmed)
    out["phrases_not_affirmed"] = len(rows) - len(affirmed)
    for engine in ENGINES:
        with edgemed.load(bundle, backend=engine, device="cpu", threads=1) as pipe:
            results = [pipe(r["text"]) for r in rows]
            if engine == ENGINES[0]:
                out["judge_us_median"] = judge_cost(pipe.manifest, rows, results)
        score = score_phrases(rows, results)
        out.update({f"phrases_{k}_{engine}": v for k, v in score.items()})
    return out


def judge_cost(manifest: Any, rows: list[dict[str, Any]], results: list[Any]) -> float:
    """Median microseconds the rules and the calibration add to one call (the phrases)."""
    conf = cc.load_confidence(manifest, int(manifest.postprocess["top_k"]))
    times = []
    for _ in range(3):
        for row, res in zip(rows, results, strict=True):
            ranked = res.nearest
            t0 = time.perf_counter()
            cc.judge(
                row["text"],
                [n.code for n in ranked],
                [n.text for n in ranked],
                [n.score for n in ranked],
                conf,
            )
            times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1e6, 1)


def score_phrases(rows: list[dict[str, Any]], results: list[Any]) -> dict[str, Any]:
    """Coverage/precision on affirmed phrases; confident ones among the others; assertion."""
    conf_aff = right = forbidden = conf_other = assert_ok = 0
    n_aff = 0
    for row, res in zip(rows, results, strict=True):
        assert_ok += res.assertion == row["assertion"]
        got = res.suggestion
        if row["assertion"] in ("present", "mixed"):
            n_aff += 1
            if got is not None:
                conf_aff += 1
                right += got.code[:3] in row["categories"] and not bad(got.code, row)
                forbidden += bad(got.code, row)
        elif got is not None:
            conf_other += 1
    return {
        "coverage": round(conf_aff / n_aff, 4),
        "category_precision": round(right / conf_aff, 4) if conf_aff else 1.0,
        "confident": conf_aff,
        "confident_wrong": conf_aff - right,
        "confident_contradicted": forbidden,
        "not_affirmed_confident": conf_other,
        "assertion_accuracy": round(assert_ok / len(rows), 4),
    }


def bad(code: str, row: dict[str, Any]) -> bool:
    return any(code.startswith(f) for f in row.get("forbid", []))


def ship_sample(
    bundle: Path,
    texts: list[str],
    truth: list[str],
    heldout: np.ndarray,
    confident: dict[str, np.ndarray],
    cat_ok: dict[str, np.ndarray],
) -> dict[str, Any]:
    rng = np.random.default_rng(20261201)
    pick = sorted(int(i) for i in rng.choice(np.where(heldout)[0], SAMPLE_SIZE, replace=False))
    (bundle / "code_confidence_eval.json").write_text(
        json.dumps([{"text": texts[i], "code": truth[i]} for i in pick], indent=0) + "\n"
    )
    out: dict[str, Any] = {"confidence_sample_queries": SAMPLE_SIZE}
    for e, c in confident.items():
        sel = c[pick]
        out[f"confidence_sample_coverage_{e}"] = round(float(sel.mean()), 4)
        out[f"confidence_sample_category_precision_{e}"] = round(
            float(cat_ok[e][pick][sel].mean()), 4
        )
    return out


def write_card_section(
    bundle: Path,
    metrics: dict[str, Any],
    conf: cc.CodeConfidence,
    flips: list[dict[str, float]],
    reliability: list[dict[str, float]],
) -> None:
    template = (HERE / "clinical_text_minilm_confidence_card.md").read_text()
    flip_rows = "\n".join(
        f"| {r['lo']:.3f} to {r['hi']:.3f} | {r['n']} | {r['flip']:.1%} |" for r in flips
    )
    rel_rows = "\n".join(
        f"| {r['lo']:.1f} to {r['hi']:.1f} | {r['n']} | {r['p']:.2f} | {r['right']:.2f} |"
        for r in reliability
    )
    pct = {
        k: f"{v:.1%}"
        for k, v in metrics.items()
        if isinstance(v, float)
        and v <= 1
        and ("coverage" in k or "precision" in k or "accuracy" in k or "rate" in k)
    }
    section = template.format(
        **metrics,
        pct=pct,
        weights=", ".join(
            f"{n} {w:+.3f}" for n, w in zip(conf.features, conf.weights, strict=True)
        ),
        intercept=f"{conf.intercept:+.3f}",
        flip_rows=flip_rows,
        reliability_rows=rel_rows,
    )
    card_path = bundle / "MODEL_CARD.md"
    card = card_path.read_text()
    block = f"{CARD_BEGIN}\n{section.strip()}\n{CARD_END}\n"
    if CARD_BEGIN in card:
        card = re.sub(
            re.escape(CARD_BEGIN) + ".*?" + re.escape(CARD_END) + "\n",
            lambda _: block,
            card,
            flags=re.S,
        )
    else:
        card = card.replace("## Limitations and risks", block + "\n## Limitations and risks")
    card_path.write_text(card)


def update_manifest(bundle: Path, manifest: dict[str, Any], metrics: dict[str, Any]) -> None:
    def sha(rel: str) -> str:
        return hashlib.sha256((bundle / rel).read_bytes()).hexdigest()

    arts = manifest["artifacts"]
    for role, rel in (
        ("code_confidence", "code_confidence.json"),
        ("code_confidence_eval", "code_confidence_eval.json"),
    ):
        arts[role] = {"path": rel, "sha256": ""}
    for art in arts.values():
        art["sha256"] = sha(art["path"])
    manifest["version"] = VERSION
    manifest["metrics"] = {**manifest["metrics"], **metrics}
    card = (bundle / "MODEL_CARD.md").read_text()
    (bundle / "MODEL_CARD.md").write_text(
        re.sub(r"^# Model card: (\S+) \S+", rf"# Model card: \1 {VERSION}", card, count=1)
    )
    arts["model_card"]["sha256"] = sha(arts["model_card"]["path"])
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
