"""Field-confidence calibration and leave-family-out evaluation of the monitor reader.

1. ``collect``: render screens (monitor_screens.py) and read them with the bundle; record, per
   screen and field, the truth, what was read or why it was withheld, and for every candidate
   value the structure found, its confidence features and whether it equals the truth.
2. ``fit``: logistic regression (scikit-learn) of "candidate value correct" on the features of
   the **tuning families only** (TUNE_LAYOUTS x TUNE_FONTS); the operating threshold is the
   lowest that leaves no wrong value on the tuning screens, raised to the next candidate above
   it (wrong values driven to zero first, then the most fields read).
3. ``report``: per field and per family on held-out screens (layout or font family not in the
   tuning sets): wrong values, fields read of those shown, abstentions by reason, and the
   coverage/error curve over thresholds.

Run:  python models/recipes/monitor_safety.py [--tune 600] [--heldout 900] [--out FILE.json]
(called by monitor_reader.py; about 0.2 s per screen on a 2-core x86 machine).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from monitor_screens import (  # noqa: E402
    FONTS,
    HELDOUT_FONTS,
    HELDOUT_LAYOUTS,
    LAYOUTS,
    TUNE_FONTS,
    TUNE_LAYOUTS,
    render_screen,
)

import edgemed  # noqa: E402
import edgemed.tasks.monitor_reader.postprocess as monitor_pp  # noqa: E402
from edgemed.results import MONITOR_FIELDS, MonitorReading  # noqa: E402
from edgemed.tasks.monitor_reader.field_confidence import FEATURES, FieldConfidence  # noqa: E402

KEYS = tuple(MONITOR_FIELDS)
SPLIT = {"nibp": ("nibp_systolic", "nibp_diastolic")}
VERSION = "1.3.11"
# Disjoint from the golden and fixture seeds. Held-out seeds 300000+, 600000+ and 950000+ were
# looked at while the reader was developed (their failures shaped rules of vitals_text.py), and
# 1.1.0 reported 700000+: the 1.1.1 figures come from 800000+, drawn once for the release and
# never used to change anything. 1.2.0's box cutting and closer look were developed on tuning
# seeds 250000+ and held-out seeds 970000+; a first 1.2.0 release run on 1100000+ gave 4 wrong
# values, 3 of which shaped its last rules (text between label and value, stacked limits,
# "..") so those seeds are spent too: 1.2.0 reported 1200000+, drawn once. 1.3.0's steps were
# developed on held-out seeds 5000000+ (and 1200000+ had been reported): 1.3.0 reports
# 1300000+, drawn once. Seeds 1400000+ to 1700000+ were looked at by release runs of
# versions that were not shipped (a verifier recogniser; a 1.3.1 whose refitted confidence let
# more misreads through): 1.3.1 (its withhold-only rules, 1.3.0's confidence kept with
# --keep-calibration) reported 1800000+, drawn once. 1.3.2's segment check was developed on
# value crops of seeds 6000000+ and 6100000+; its label rule ("Sp02*" still claims numbers)
# comes from one of 1.3.1's two wrong values on 1800000+, so those seeds are spent too: 1.3.2
# reported 1900000+, drawn once. 1.3.3's rows rule comes from one of 1.3.2's two wrong values
# there: 1.3.3 reported 2000000+, drawn once. 1.3.4's crossing rule comes from 1.3.3's one
# wrong value there: 1.3.4 was measured on 2100000+ (2,000 screens), drawn once, and not
# shipped: two of its three wrong values there shaped 1.3.5's rules, so 1.3.5 reports 2200000+,
# drawn once. 1.3.6's unread-digits rule comes from 1.3.5's one wrong value there: 1.3.6 was
# measured on 2300000+, drawn once, and not shipped (its rule also withheld NIBPs with a
# bracketed mean, and its one wrong value there shaped 1.3.7's unread-box rule), so 1.3.7
# reports 2400000+, drawn once. 1.3.8's far-below rule comes from a known wrong value of
# 2101484 (a fixture since 1.3.5), its limit from development screens: 1.3.8 reports
# 2500000+, drawn once. 1.3.9's border padding comes from one of 1.3.8's three wrong values
# there: 1.3.9 reports 2600000+, drawn once. 1.3.10's five checks come from the wrong values
# of 1.3.8 and 1.3.9 (fixtures), tried on development seeds 9400000+ and 9500000+. Measured
# on 2700000+ with its field confidence refit on the tuning screens (threshold 0.60), it gave
# 3 wrong values (scored 0.90 and above) and was not shipped; those seeds are spent. 1.3.10 keeps
# 1.3.9's field confidence and reports 2800000+, drawn once. 1.3.11's frame-edge rule comes
# from the one wrong value of a second renderer's tilted screens (monitor_other_renderer.py
# --photo, 31000163), tried on development seeds 9400000+: 1.3.11 reports 2900000+, drawn once.
# Development runs use --heldout-seed0.
TUNE_SEED0, HELDOUT_SEED0 = 200_000, 2_900_000


def families(split: str, n: int, seed0: int | None = None) -> list[tuple[int, str, str]]:
    """(seed, layout, font) for n screens of a split; held out = layout or font held out."""
    out = []
    rng = np.random.default_rng(7 if split == "tune" else 11)
    seed = TUNE_SEED0 if split == "tune" else HELDOUT_SEED0
    seed = seed if seed0 is None else seed0
    fonts = list(FONTS)
    while len(out) < n:
        if split == "tune":
            layout = str(rng.choice(TUNE_LAYOUTS))
            font = str(rng.choice(TUNE_FONTS))
        else:
            layout = str(rng.choice(LAYOUTS))
            font = str(rng.choice(fonts))
            if layout in TUNE_LAYOUTS and font in TUNE_FONTS:
                continue
        out.append((seed, layout, font))
        seed += 1
    return out


def collect(pipe: Any, plan: list[tuple[int, str, str]]) -> dict[str, list[dict[str, Any]]]:
    """Read every planned screen; rows per field and per candidate."""
    seen: list[Any] = []
    original = monitor_pp.read_fields

    def recording(candidates: Any, texts: Any, confidence: Any) -> Any:
        seen.append(candidates)  # the recipe looks at candidates; the bundle is unchanged
        return original(candidates, texts, confidence)

    monitor_pp.read_fields = recording  # type: ignore[assignment]
    fields, candidates = [], []
    try:
        for seed, layout, font in plan:
            img, gt = render_screen(seed, layout=layout, font=font)
            seen.clear()
            reading = pipe(img)
            assert isinstance(reading, MonitorReading)
            for key in KEYS:
                w = reading.withheld.get(key)
                v = reading.fields[key]
                fields.append(
                    {
                        "seed": seed,
                        "layout": layout,
                        "font": font,
                        "field": key,
                        "truth": gt[key],
                        "read": reading.value(key),
                        "reason": w.reason if w else None,
                        "score": v.confidence if v else (w.confidence if w else None),
                        "limits_read": list(v.alarm_limits) if v and v.alarm_limits else None,
                    }
                )
            for c in seen[0] if seen else []:
                if c.value is None:
                    continue
                keys = SPLIT.get(c.name, (c.name,))
                truth = tuple(gt[k] for k in keys)
                candidates.append(
                    {
                        "field_keys": list(keys),
                        "seed": seed,
                        "layout": layout,
                        "font": font,
                        "name": c.name,
                        "features": c.features,
                        "correct": tuple(c.value) == truth,
                    }
                )
    finally:
        monitor_pp.read_fields = original  # type: ignore[assignment]
    return {"fields": fields, "candidates": candidates}


def fit(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """Logistic regression on the tuning candidates; threshold: no wrong value above it."""
    from sklearn.linear_model import LogisticRegression

    probe = FieldConfidence(tuple(0.0 for _ in FEATURES), 0.0, 0.0)
    x = np.array([probe.inputs(c["features"]) for c in candidates])
    y = np.array([c["correct"] for c in candidates], dtype=int)
    model = LogisticRegression(C=1.0, max_iter=2000, class_weight={0: 5.0, 1: 1.0})
    model.fit(x, y)
    weights = {f: round(float(w), 6) for f, w in zip(FEATURES, model.coef_[0], strict=True)}
    bias = round(float(model.intercept_[0]), 6)
    conf = FieldConfidence(tuple(weights[f] for f in FEATURES), bias, 0.0)
    scores = np.array([conf(c["features"]) for c in candidates])
    wrong = scores[y == 0]
    threshold = float(wrong.max()) if len(wrong) else 0.0
    above = scores[scores > threshold]
    # Midway to the next correct candidate: the same decision on the tuning set, less brittle.
    threshold = (threshold + float(above.min())) / 2 if len(above) else threshold
    return {
        "weights": weights,
        "bias": bias,
        "threshold": round(min(threshold, 0.999), 6),
        "fitted_on": {"candidates": len(candidates), "wrong": int((y == 0).sum())},
    }


def summarise(fields: list[dict[str, Any]]) -> dict[str, Any]:
    """Wrong values, fields read of those shown, abstentions by reason."""
    shown = [f for f in fields if f["truth"] is not None]
    wrong = [f for f in fields if f["read"] is not None and f["read"] != f["truth"]]
    read = [f for f in shown if f["read"] == f["truth"]]
    reasons = Counter(f["reason"] for f in shown if f["read"] is None)
    return {
        "fields": len(fields),
        "shown": len(shown),
        "wrong_values": len(wrong),
        "read_pct": round(100.0 * len(read) / max(len(shown), 1), 2),
        "withheld_shown": dict(sorted(reasons.items(), key=lambda kv: str(kv[0]))),
        "absent_read_as_none": sum(1 for f in fields if f["truth"] is None and f["read"] is None),
        "wrong_examples": [
            {k: f[k] for k in ("seed", "layout", "font", "field", "truth", "read")}
            for f in wrong[:10]
        ],
    }


def report(fields: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[str, Any] = {"all": summarise(fields)}
    for key in ("field", "layout", "font"):
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for f in fields:
            groups[f[key]].append(f)
        by[f"by_{key}"] = {k: summarise(v) for k, v in sorted(groups.items())}
    return by


def candidate_curve(collected: dict[str, Any], calib: dict[str, Any]) -> list[dict[str, Any]]:
    """Coverage/error over thresholds (a fixed set and the operating one), candidate level:
    correct and wrong candidate values at or above each threshold (NIBP counts as two fields),
    over the fields shown."""
    conf = FieldConfidence(tuple(calib["weights"][f] for f in FEATURES), calib["bias"], 0.0)
    scored = [
        (conf(c["features"]), c["correct"], len(c.get("field_keys", [1])))
        for c in collected["candidates"]
    ]
    shown = sum(1 for f in collected["fields"] if f["truth"] is not None)
    out = []
    for t in sorted({0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, calib["threshold"]}):
        read = sum(n for s, ok, n in scored if s >= t and ok)
        wrong = sum(n for s, ok, n in scored if s >= t and not ok)
        out.append(
            {"threshold": t, "read_pct": round(100.0 * read / max(shown, 1), 2), "wrong": wrong}
        )
    return out


GOLDEN_MIN_TEXT_CONFIDENCE = 0.95


def pick_golden(pipe: Any, n: int = 4) -> list[tuple[int, str, str]]:
    """Golden screens: no wrong value, at least four fields read, alarm limits on the screen;
    together they must hold seven-segment digits and a withheld field."""
    chosen: list[tuple[int, str, str]] = []
    seven = withheld = False
    seed = 410_000
    while len(chosen) < n and seed < 410_400:
        layout = str(TUNE_LAYOUTS[seed % len(TUNE_LAYOUTS)])
        font = ("dseg7-classic", "dejavu", "hershey", "dseg7-modern", "b612", "liberation")[
            seed % 6
        ]
        img, gt = render_screen(seed, layout=layout, font=font, lossy=False)
        reading = pipe(img)
        got = {k: reading.value(k) for k in KEYS}
        wrong = any(v is not None and v != gt[k] for k, v in got.items())
        read = sum(v is not None for v in got.values())
        needs_seven = len(chosen) == n - 1 and not seven
        needs_withheld = len(chosen) == n - 1 and not withheld
        ok = not wrong and read >= 4 and gt["alarm_limits"]
        ok = ok and (not needs_seven or font.startswith("dseg7"))
        ok = ok and (not needs_withheld or any(v is None for v in got.values()))
        if ok:
            chosen.append((seed, layout, font))
            seven |= font.startswith("dseg7")
            withheld |= any(v is None for v in got.values())
        seed += 1
    return chosen


def write_golden(bundle: Path, pipe: Any, specs: list[tuple[int, str, str]]) -> None:
    """Stacked golden screens and what the bundle must read on them (withheld fields: None)."""
    import cv2
    from monitor_reader import prob_map_stats

    screens, cases, top = [], [], 0
    for seed, layout, font in specs:
        img, gt = render_screen(seed, layout=layout, font=font, lossy=False)
        reading = pipe(img)
        fields = {k: reading.value(k) for k in KEYS}
        # Texts read with margin only: a character the recogniser is unsure of can flip on
        # another CPU's INT8 kernels (1.1.1's "TC", confidence 0.73, read "Tc" on aarch64 with
        # every field still exact), and a golden vector must hold wherever the bundle is right.
        texts = [
            t
            for t in reading.texts
            if [x.text for x in reading.texts].count(t.text) == 1
            and t.confidence >= GOLDEN_MIN_TEXT_CONFIDENCE
        ]
        prob = pipe.backend.run(pipe.preprocess(img).tensors)["sigmoid_0.tmp_0"][0, 0]
        cases.append(
            {
                "image": f"seed-{seed}-{layout}-{font}",
                "rows": [top, top + img.shape[0]],
                "width": img.shape[1],
                "fields": fields,
                "truth": {k: gt[k] for k in KEYS},
                "alarm_limits": gt["alarm_limits"],
                "box_scores": {t.text: round(t.box_score, 5) for t in texts},
                "prob_map": prob_map_stats(prob),
            }
        )
        screens.append(img)
        top += img.shape[0]
    width = max(s.shape[1] for s in screens)
    sheet = np.zeros((top, width, 3), np.uint8)
    for s, c in zip(screens, cases, strict=True):
        sheet[c["rows"][0] : c["rows"][1], : s.shape[1]] = s
    cv2.imwrite(str(bundle / "golden" / "screens.png"), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    spec = {"screens": [list(x) for x in specs], "cases": cases}
    (bundle / "golden" / "expected.json").write_text(json.dumps(spec, indent=1) + "\n", "utf-8")


def write_fixtures(folder: Path) -> None:
    """24 lossless screens, two per layout family, font families in turn: the shipped test set
    (its truth beside it). Seeds 500000+ (used by no tuning)."""
    import shutil

    import cv2
    from monitor_screens import font_hashes

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    fonts = list(FONTS)
    screens = []
    for i in range(24):
        seed, layout, font = 500_000 + i, LAYOUTS[i // 2], fonts[i % len(fonts)]
        img, gt = render_screen(seed, layout=layout, font=font, lossy=False)
        name = f"screen-{seed}.png"
        cv2.imwrite(str(folder / name), img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        screens.append({"file": name, **gt})
    labels = {
        "recipe": "models/recipes/monitor_screens.py",
        "lossy": False,
        "fonts": font_hashes(),
        "heldout_layouts": list(HELDOUT_LAYOUTS),
        "heldout_fonts": list(HELDOUT_FONTS),
        "screens": screens,
    }
    (folder / "labels.json").write_text(json.dumps(labels, indent=1) + "\n", "utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", default=str(ROOT / "models" / "monitor-reader"))
    ap.add_argument("--tune", type=int, default=600)
    ap.add_argument("--heldout", type=int, default=1000)  # over 5,000 fields shown
    ap.add_argument("--out", default="/tmp/monitor_safety.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--release", action="store_true", help="write golden, fixtures, card")
    ap.add_argument("--heldout-seed0", type=int, help="first held-out seed (development runs)")
    ap.add_argument(
        "--fp32-recogniser", type=Path, help="FP32 recogniser to compare on held-out screens"
    )
    ap.add_argument(
        "--keep-calibration",
        action="store_true",
        help="keep the bundle's field confidence (weights, threshold) instead of refitting it",
    )
    args = ap.parse_args()
    manifest_path = Path(args.bundle) / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if args.keep_calibration:
        # Withhold-only changes to the reader: the candidates that can reach the threshold are
        # (nearly) a subset of the previous version's, so its calibration still holds, and a
        # refit on the tuning screens would move the threshold by noise.
        calib = dict(manifest["postprocess"]["field_confidence"])
        calib["fitted_on"] = f"kept from monitor-reader {manifest['version']}"
    else:
        with edgemed.load(Path(args.bundle), golden=False, threads=args.threads) as pipe:
            tune = collect(pipe, families("tune", args.tune))
        calib = fit(tune["candidates"])
        manifest["postprocess"]["field_confidence"] = {
            k: calib[k] for k in ("weights", "bias", "threshold")
        }
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    with edgemed.load(Path(args.bundle), golden=False, threads=args.threads) as pipe:
        tune = collect(pipe, families("tune", args.tune))
        held = collect(pipe, families("heldout", args.heldout, args.heldout_seed0))
    out = {
        "calibration": calib,
        "tune": report(tune["fields"]),
        "heldout": report(held["fields"]),
        "heldout_layout_families": list(HELDOUT_LAYOUTS),
        "heldout_font_families": list(HELDOUT_FONTS),
        "curve_heldout": candidate_curve(held, calib),
        "curve_tune": candidate_curve(tune, calib),
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: out[k]["all"] for k in ("tune", "heldout")}, indent=1))
    if args.release:
        release(Path(args.bundle), out, args)


def fixture_metrics(pipe: Any, folder: Path) -> dict[str, Any]:
    """Wrong values and fields read on a shipped fixture folder (its labels.json)."""
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))["screens"]
    rows = []
    for screen in labels:
        reading = pipe(folder / screen["file"])
        for key in KEYS:
            rows.append({"truth": screen[key], "read": reading.value(key), "reason": None})
    s = summarise([{**r, "seed": 0, "layout": "", "font": "", "field": ""} for r in rows])
    return {
        "screens": len(labels),
        "shown": s["shown"],
        "wrong_values": s["wrong_values"],
        "read_pct": s["read_pct"],
    }


def fp32_heldout(bundle: Path, fp32: Path, args: Any) -> dict[str, Any]:
    """The same held-out screens with the FP32 recogniser in place of the shipped INT8 one:
    the INT8 comparison on this evaluation."""
    import hashlib
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "monitor-reader"
        shutil.copytree(bundle, copy)
        shutil.copy(fp32, copy / "rec.fp32.onnx")
        manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
        rec = manifest["artifacts"]["recognizer"]
        rec.update(path="rec.fp32.onnx", precision="fp32")
        rec["sha256"] = hashlib.sha256((copy / "rec.fp32.onnx").read_bytes()).hexdigest()
        (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        with edgemed.load(copy, golden=False, threads=args.threads) as pipe:
            held = collect(pipe, families("heldout", args.heldout, args.heldout_seed0))
    s = summarise(held["fields"])
    return {"heldout_wrong_values": s["wrong_values"], "heldout_read_pct": s["read_pct"]}


def release(bundle: Path, out: dict[str, Any], args: Any) -> None:
    """Golden screens, shipped fixtures, metrics, card and sha256s of version VERSION."""

    fixtures = ROOT / "tests" / "fixtures"
    if args.fp32_recogniser:
        out["fp32_recognizer"] = fp32_heldout(bundle, args.fp32_recogniser, args)
    with edgemed.load(bundle, golden=False, threads=args.threads) as pipe:
        specs = pick_golden(pipe)
        write_golden(bundle, pipe, specs)
        write_fixtures(fixtures / "monitor-screens-v2")
        first = fixture_metrics(pipe, fixtures / "monitor-screens")
        second = fixture_metrics(pipe, fixtures / "monitor-screens-v2")
    held, tune = out["heldout"]["all"], out["tune"]["all"]
    metrics: dict[str, Any] = {
        "evaluation": "rendered screens, leave-family-out (models/recipes/monitor_safety.py)",
        "heldout_screens": args.heldout,
        "heldout_fields_shown": held["shown"],
        "heldout_wrong_values": held["wrong_values"],
        "heldout_read_pct": held["read_pct"],
        "tune_screens": args.tune,
        "tune_fields_shown": tune["shown"],
        "tune_wrong_values": tune["wrong_values"],
        "tune_read_pct": tune["read_pct"],
        **{f"heldout_{k}_read_pct": v["read_pct"] for k, v in out["heldout"]["by_field"].items()},
        **{
            f"heldout_{k}_wrong_values": v["wrong_values"]
            for k, v in out["heldout"]["by_field"].items()
        },
        "operating_threshold": out["calibration"]["threshold"],
        "subset_v1_screens": first["screens"],
        "subset_v1_wrong_values": first["wrong_values"],
        "subset_v1_read_pct": first["read_pct"],
        "subset_v2_screens": second["screens"],
        "subset_v2_wrong_values": second["wrong_values"],
        "subset_v2_read_pct": second["read_pct"],
        **{f"fp32_recognizer_{k}": v for k, v in out.get("fp32_recognizer", {}).items()},
    }
    finish(bundle, out, metrics, specs, args.threads)


def finish(
    bundle: Path,
    out: dict[str, Any],
    metrics: dict[str, Any],
    specs: list[tuple[int, str, str]],
    threads: int,
) -> None:
    """Manifest (version, flat metrics, sha256s) and model card; the golden check must pass."""
    import hashlib

    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    old = manifest.get("metrics", {})
    gate = {k: v for k, v in old.items() if k.startswith("int8_gate_")}
    if not gate and "shipped_variant" in old:  # 1.0.0's gate, on the first renderer's screens
        gate = {
            f"int8_gate_{k}": v
            for k, v in old.items()
            if k.startswith(("fp32_", "rec_int8_", "det_int8_", "int8_"))
            or k in ("shipped_variant", "eval_screens")
        }
    metrics.update(gate)  # manifest metrics are flat: numbers and strings
    manifest["version"] = VERSION
    manifest["metrics"] = metrics
    card = (HERE / "monitor_reader_card.md").read_text(encoding="utf-8")
    tables = {
        "by_layout": out["heldout"]["by_layout"],
        "by_font": out["heldout"]["by_font"],
        "by_field": out["heldout"]["by_field"],
    }
    lines = []
    for group, rows in tables.items():
        lines.append(f"| {group[3:]} | shown | read % | wrong | withheld (top reasons) |")
        lines.append("|---|---:|---:|---:|---|")
        for name, r in rows.items():
            top = sorted(r["withheld_shown"].items(), key=lambda kv: -kv[1])[:3]
            held_out = name in HELDOUT_LAYOUTS or name in HELDOUT_FONTS
            lines.append(
                f"| {name}{' (held out)' if held_out else ''} | {r['shown']} | {r['read_pct']} | "
                f"{r['wrong_values']} | {', '.join(f'{k} {v}' for k, v in top)} |"
            )
        lines.append("")
    card = (
        card.replace("{{METRICS}}", json.dumps(metrics, indent=1))
        .replace("{{TABLES}}", "\n".join(lines))
        .replace("{{CURVE}}", json.dumps(out["curve_heldout"], indent=1))
        .replace("{{CALIBRATION}}", json.dumps(out["calibration"], indent=1))
        .replace("{{GOLDEN}}", ", ".join(f"{seed} {lay} {font}" for seed, lay, font in specs))
    )
    (bundle / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    for art in manifest["artifacts"].values():
        art["sha256"] = hashlib.sha256((bundle / art["path"]).read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    with edgemed.load(bundle, threads=threads):  # the golden check at load must pass
        pass
    print("released", VERSION, json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
