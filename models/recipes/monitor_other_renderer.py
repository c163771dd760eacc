"""Monitor screens from a second renderer: a check of the monitor reader it was never tuned on.

Every screen the reader was developed, tuned and evaluated on came from one generator
(monitor_screens.py: PIL text on NumPy canvases, its own 12 layout families). This script draws
screens another way, to see whether "never a wrong value" holds beyond that generator:

- **renderer**: matplotlib's Agg rasteriser (its own glyph placement, antialiasing and line
  drawing), not PIL;
- **layouts**, written for this check alone and never used to change the reader: parameter
  tiles in a grid, a value column beside waveforms, a bottom bar under waveforms, a list of
  rows (label, value, unit); sizes from 800x480 to 1920x1080;
- **fonts**: the Debian fonts of requirements.txt, values also in DSEG7 seven-segment;
- alarm limits (high above low, small) on about half the screens, "--", "---" and "?" fields,
  fields not shown at all, waveforms with their lead names, mild blur, noise and JPEG.

Scoring, per field: a value read that differs from the truth (or any value where the screen
shows none) is **wrong**; a value equal to the truth (temperature within 0.05) is read; the rest
are withheld, with the reader's reason. Nothing here feeds back into the bundle.

Run:  python models/recipes/monitor_other_renderer.py [--screens 200] [--seed0 N] [--out F.json]
The unit tests read 12 such screens (seeds 32000000+) from tests/fixtures/monitor-other-renderer/,
written by ``--fixtures DIR --screens 12 --seed0 32000000``.
Needs matplotlib (pip install matplotlib) and the fonts named in requirements.txt.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import cv2
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.font_manager import FontProperties

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
import edgemed  # noqa: E402
from edgemed.results import MonitorReading  # noqa: E402

FONT_DIR = Path("/usr/share/fonts")
SANS = [
    "truetype/dejavu/DejaVuSans-Bold.ttf",
    "truetype/liberation2/LiberationSans-Bold.ttf",
    "truetype/roboto/unhinted/RobotoTTF/Roboto-Bold.ttf",
    "truetype/roboto/unhinted/RobotoCondensed-Bold.ttf",
    "truetype/lato/Lato-Bold.ttf",
    "truetype/open-sans/OpenSans-Bold.ttf",
    "opentype/b612/B612-Bold.otf",
    "truetype/freefont/FreeSansBold.ttf",
    "opentype/urw-base35/NimbusSans-Bold.otf",
    "opentype/cantarell/Cantarell-Bold.otf",
]
LABEL = [
    "truetype/dejavu/DejaVuSans.ttf",
    "truetype/liberation2/LiberationSans-Regular.ttf",
    "truetype/lato/Lato-Regular.ttf",
    "truetype/open-sans/OpenSans-Regular.ttf",
    "opentype/urw-base35/NimbusSans-Regular.otf",
    "truetype/freefont/FreeSans.ttf",
]
SEGMENT = ["truetype/dseg/DSEG7Classic-Bold.ttf", "truetype/dseg/DSEG7Modern-Bold.ttf"]
FIELDS = ("hr", "spo2", "nibp", "rr", "temperature")
LABELS = {
    "hr": ["HR", "ECG HR", "HR bpm"],
    "spo2": ["SpO2", "SpO2 %", "SPO2"],
    "nibp": ["NIBP", "NBP mmHg", "NIBP"],
    "rr": ["RR", "RESP", "RR rpm"],
    "temperature": ["Temp", "T1 °C", "TEMP"],
}
LIMITS = {"hr": (120, 50), "spo2": (100, 90), "rr": (30, 8), "temperature": (39.0, 36.0)}
DARK = [(0, 0, 0), (12, 18, 32), (8, 8, 40), (25, 25, 25)]
INKS = {
    "hr": [(0.2, 1.0, 0.2), (0.4, 1.0, 0.4)],
    "spo2": [(0.2, 0.9, 1.0), (0.9, 0.9, 0.3)],
    "nibp": [(1.0, 1.0, 1.0), (1.0, 0.4, 0.4)],
    "rr": [(1.0, 1.0, 0.3), (1.0, 1.0, 1.0)],
    "temperature": [(1.0, 0.5, 1.0), (1.0, 1.0, 1.0)],
}
LAYOUTS = ("grid", "column", "bar", "list")


def font(rel: str) -> FontProperties:
    return FontProperties(fname=str(FONT_DIR / rel))


def values(rng: np.random.Generator) -> dict[str, Any]:
    sys_ = int(rng.integers(85, 200))
    return {
        "hr": int(rng.integers(38, 180)),
        "spo2": int(rng.integers(82, 101)),
        "nibp": (sys_, int(rng.integers(40, min(sys_ - 20, 115)))),
        "rr": int(rng.integers(6, 40)),
        "temperature": round(float(rng.uniform(35.0, 40.5)), 1),
    }


def shown_text(field: str, value: Any) -> str:
    if field == "nibp":
        return f"{value[0]}/{value[1]}"
    return f"{value:.1f}" if field == "temperature" else str(value)


class Screen:
    """One matplotlib canvas in pixel coordinates (y down)."""

    def __init__(self, w: int, h: int, bg: tuple[float, float, float]) -> None:
        self.w, self.h = w, h
        self.fig = plt.figure(figsize=(w / 100, h / 100), dpi=100)
        self.fig.patch.set_facecolor(bg)
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_xlim(0, w)
        self.ax.set_ylim(h, 0)
        self.ax.axis("off")
        self.ax.set_facecolor(bg)

    def text(
        self, x: float, y: float, s: str, px: float, path: str, colour: Any, **kw: Any
    ) -> None:
        prop = font(path)
        prop.set_size(px * 72 / 100)  # points at 100 dpi for a cap height of ~0.7 px
        self.ax.text(x, y, s, fontproperties=prop, color=colour, **kw)

    def line(self, xs: Any, ys: Any, colour: Any, width: float = 1.0) -> None:
        self.ax.plot(xs, ys, color=colour, linewidth=width)

    def bgr(self) -> np.ndarray:
        self.fig.canvas.draw()
        rgba = np.asarray(self.fig.canvas.buffer_rgba())  # type: ignore[attr-defined]
        plt.close(self.fig)
        return cv2.cvtColor(np.ascontiguousarray(rgba[..., :3]), cv2.COLOR_RGB2BGR)


def waveform(
    rng: np.random.Generator, s: Screen, box: tuple[float, float, float, float], ink: Any
) -> None:
    x0, y0, x1, y1 = box
    xs = np.linspace(x0, x1, 400)
    beat = rng.uniform(0.04, 0.09)
    ys = np.clip(np.sin(xs * beat) ** 15 * 0.8 + rng.normal(0, 0.03, xs.size), -1, 1)
    s.line(xs, y1 - (ys + 1) / 2 * (y1 - y0) * 0.8 - 0.1 * (y1 - y0), ink, 1.2)  # inside its strip
    lead = str(rng.choice(["II", "PLETH", "aVR", "V1", "RESP", "I"]))
    s.text(x0 + 4, y0 + 2, lead, (y1 - y0) * 0.18, LABEL[0], ink, va="top")


def parameter(
    rng: np.random.Generator,
    s: Screen,
    box: tuple[float, float, float, float],
    field: str,
    shown: str,
    ink: Any,
    fonts: dict[str, str],
    limits: tuple[Any, Any] | None,
    style: str,
) -> None:
    """A parameter block: label, value (or its marker) and, if given, stacked alarm limits."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    label = str(rng.choice(LABELS[field]))
    value_font = (
        fonts["segment"]
        if field != "nibp" and shown[0].isdigit() and fonts["segment"]
        else fonts["value"]
    )
    if style == "row":  # label left, value right-aligned, unit after
        s.text(x0 + 0.02 * bw, (y0 + y1) / 2, label, bh * 0.32, fonts["label"], ink, va="center")
        s.text(
            x1 - 0.06 * bw,
            (y0 + y1) / 2,
            shown,
            bh * 0.62,
            value_font,
            ink,
            va="center",
            ha="right",
        )
        return
    s.text(
        x0 + 0.04 * bw,
        y0 + 0.05 * bh,
        label,
        min(bh * 0.14, bw * 0.09),
        fonts["label"],
        ink,
        va="top",
    )
    px = min(bh * 0.45, bw * 0.6 / max(len(shown), 2) * 1.6)
    s.text(x1 - 0.08 * bw, y0 + 0.6 * bh, shown, px, value_font, ink, va="center", ha="right")
    if limits is not None:
        hi, lo = (shown_text(field, v) for v in limits)
        small = px * 0.28
        s.text(x0 + 0.05 * bw, y0 + 0.55 * bh, hi, small, fonts["label"], ink, va="center")
        s.text(
            x0 + 0.05 * bw,
            y0 + 0.55 * bh + small * 1.3,
            lo,
            small,
            fonts["label"],
            ink,
            va="center",
        )


def boxes(
    rng: np.random.Generator, layout: str, w: int, h: int, n: int
) -> tuple[list[Any], list[Any]]:
    """Parameter blocks and waveform strips for a layout, in pixels."""
    if layout == "grid":
        cols = 3 if n > 4 else 2
        rows = -(-n // cols)
        return [
            (
                w * (i % cols) / cols,
                h * (i // cols) / rows,
                w * (i % cols + 1) / cols,
                h * (i // cols + 1) / rows,
            )
            for i in range(n)
        ], []
    if layout == "column":
        split = w * rng.uniform(0.55, 0.7)
        params = [(split, h * i / n, w, h * (i + 1) / n) for i in range(n)]
        waves = [(0, h * i / 3, split - 10, h * (i + 1) / 3) for i in range(3)]
        return params, waves
    if layout == "bar":
        top = h * rng.uniform(0.55, 0.68)
        params = [(w * i / n, top, w * (i + 1) / n, h) for i in range(n)]
        waves = [(0, top * i / 3, w, top * (i + 1) / 3) for i in range(3)]
        return params, waves
    rows = [
        (w * 0.05, h * (0.05 + 0.9 * i / n), w * 0.95, h * (0.05 + 0.9 * (i + 1) / n))
        for i in range(n)
    ]
    return rows, []


def photographed(img: np.ndarray, seed: int) -> np.ndarray:
    """The screen as a phone sees it (``--photo``): a tilted view (each corner moved up to 8 %
    of the side), a glare spot, faint moire, a corner sometimes covered, more blur and noise.
    Its own random stream, so the screen drawn is the same as without it."""
    rng = np.random.default_rng([seed, 1])
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-0.08, 0.08, (4, 2)).astype(np.float32) * np.float32([w, h])
    img = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.08, 0.25) * w
    glare = rng.uniform(60, 160) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    moire = rng.uniform(0, 10) * np.sin(xx * rng.uniform(0.5, 1.5) + yy * rng.uniform(0.5, 1.5))
    out = img.astype(np.float32) + (glare + moire)[..., None]
    if rng.random() < 0.3:  # a hand or a cable over one corner
        corner = np.int32([[0, 0], [w * rng.uniform(0.1, 0.25), 0], [0, h * rng.uniform(0.1, 0.3)]])
        corner = np.abs(corner - (np.int32([w, 0]) if rng.random() < 0.5 else 0)).astype(np.int32)
        cv2.fillPoly(out, [corner], (20, 20, 20))
    out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.6, 1.6)))
    out += rng.normal(0, rng.uniform(2, 8), out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def render(seed: int, photo: bool = False) -> tuple[bytes, dict[str, Any], str, str]:
    rng = np.random.default_rng(seed)
    layout = LAYOUTS[int(rng.integers(0, len(LAYOUTS)))]
    w, h = [(800, 480), (1024, 600), (1280, 720), (1920, 1080), (1024, 768)][
        int(rng.integers(0, 5))
    ]
    light = rng.random() < 0.2
    bg = (
        (0.96, 0.96, 0.94)
        if light
        else tuple(c / 255 for c in DARK[int(rng.integers(0, len(DARK)))])
    )
    s = Screen(w, h, bg)
    fonts = {
        "value": SANS[int(rng.integers(0, len(SANS)))],
        "label": LABEL[int(rng.integers(0, len(LABEL)))],
        "segment": SEGMENT[int(rng.integers(0, 2))] if rng.random() < 0.3 else "",
    }
    fields = [f for f in FIELDS if rng.random() > 0.06]
    rng.shuffle(fields)  # type: ignore[arg-type]
    params, waves = boxes(rng, layout, w, h, len(fields))
    truth: dict[str, Any] = dict.fromkeys(
        ("hr", "spo2", "nibp_systolic", "nibp_diastolic", "rr", "temperature")
    )
    vals = values(rng)
    with_limits = rng.random() < 0.5
    for field, box in zip(fields, params, strict=True):
        ink = (0.1, 0.1, 0.1) if light else INKS[field][int(rng.integers(0, 2))]
        blank = rng.random() < 0.07
        shown = str(rng.choice(["--", "---", "?"])) if blank else shown_text(field, vals[field])
        if not blank:
            if field == "nibp":
                truth["nibp_systolic"], truth["nibp_diastolic"] = vals["nibp"]
            else:
                truth[field] = vals[field]
        limits = LIMITS.get(field) if with_limits and layout != "list" else None
        parameter(
            rng, s, box, field, shown, ink, fonts, limits, "row" if layout == "list" else "tile"
        )
        if layout == "grid" and rng.random() < 0.7:
            x0, y0, x1, y1 = box
            s.line(
                [x0 + 2, x1 - 2, x1 - 2, x0 + 2, x0 + 2],
                [y0 + 2, y0 + 2, y1 - 2, y1 - 2, y0 + 2],
                (0.45, 0.45, 0.45),
                1.0,
            )
    for box in waves:
        waveform(rng, s, box, (0.1, 0.6, 0.1) if light else (0.2, 0.9, 0.2))
    img = s.bgr()
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 0.9)))
    noisy = img.astype(np.float32) + rng.normal(0, rng.uniform(0, 4), img.shape)
    img = np.clip(noisy, 0, 255).astype(np.uint8)
    quality = int(rng.integers(60, 96))
    if photo:
        img, quality = photographed(img, seed), quality - 20
    _, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return jpg.tobytes(), truth, layout, Path(fonts["segment"] or fonts["value"]).stem


def write_fixtures(folder: Path, seed0: int, n: int) -> None:
    """n screens as the JPEG files the check reads, with their truth in labels.json."""
    folder.mkdir(parents=True, exist_ok=True)
    screens = []
    for seed in range(seed0, seed0 + n):
        jpg, truth, layout, face = render(seed)
        name = f"screen-{seed}.jpg"
        (folder / name).write_bytes(jpg)
        screens.append({"file": name, "seed": seed, "layout": layout, "font": face, **truth})
    labels = {"recipe": "models/recipes/monitor_other_renderer.py", "screens": screens}
    (folder / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")


def score(reading: MonitorReading, truth: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, want in truth.items():
        got = reading.value(key)
        w = reading.withheld.get(key)
        if got is None:
            outcome = "withheld" if want is not None else "none"
        elif want is not None and abs(float(got) - float(want)) < 0.051:
            outcome = "read"
        else:
            outcome = "wrong"
        rows.append(
            {
                "field": key,
                "truth": want,
                "read": got,
                "outcome": outcome,
                "reason": w.reason if w else None,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--screens", type=int, default=200)
    ap.add_argument("--seed0", type=int, default=31_000_000)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--save-wrong", type=Path, help="write the screens with a wrong value here")
    ap.add_argument("--photo", action="store_true", help="tilt, glare, moire, occlusion")
    ap.add_argument("--fixtures", type=Path, help="only write --screens screens and their truth")
    args = ap.parse_args()
    if args.fixtures:
        write_fixtures(args.fixtures, args.seed0, args.screens)
        return
    pipe = edgemed.load("monitor-reader")
    rows, wrong = [], []
    for seed in range(args.seed0, args.seed0 + args.screens):
        jpg, truth, layout, face = render(seed, args.photo)
        img = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
        reading = pipe(img)
        assert isinstance(reading, MonitorReading)
        for r in score(reading, truth):
            rows.append({**r, "seed": seed, "layout": layout, "font": face})
            if r["outcome"] == "wrong":
                wrong.append(rows[-1])
                if args.save_wrong:
                    args.save_wrong.mkdir(parents=True, exist_ok=True)
                    (args.save_wrong / f"{seed}.jpg").write_bytes(jpg)
    present = [r for r in rows if r["truth"] is not None]
    by: dict[str, dict[str, Counter[str]]] = {
        "layout": defaultdict(Counter),
        "font": defaultdict(Counter),
    }
    for r in rows:
        for k in by:
            by[k][r[k]][r["outcome"]] += 1
    report = {
        "screens": args.screens,
        "seed0": args.seed0,
        "photo": args.photo,
        "bundle": f"{pipe.manifest.id}@{pipe.manifest.version}",
        "fields": len(rows),
        "present": len(present),
        "wrong": len(wrong),
        "read_of_present": round(
            sum(r["outcome"] == "read" for r in present) / max(len(present), 1), 4
        ),
        "withheld_reasons": Counter(
            r["reason"] for r in present if r["outcome"] == "withheld"
        ).most_common(),
        "by_layout": {k: dict(v) for k, v in by["layout"].items()},
        "by_font": {k: dict(v) for k, v in by["font"].items()},
        "wrong_values": wrong,
    }
    text = json.dumps(report, indent=1, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
