"""Rendered patient-monitor screens with known vital signs (tuning and evaluation data).

No public photo set of bedside-monitor screens with value labels is installable offline, so
screens are drawn, deterministically from a seed, with the variety real monitors show:

* **12 layout families** (``LAYOUTS``): ``side-column`` (waveforms left, a column of parameter
  tiles right), ``left-column`` (tiles left, waveforms right), ``bottom-row`` (waveforms on top,
  two rows of three tiles), ``bottom-bar`` (waveforms on top, one bar of five narrow tiles),
  ``top-bar`` (one bar of tiles on top, waveforms below), ``grid-6`` (2x3 or 3x2 tiles, no
  waveforms), ``grid-4`` (2x2 tiles: four parameters shown, one not), ``vertical-list`` (one
  full-width row per parameter, label left, value right), ``two-column`` (waveforms left, two
  columns of tiles right), ``transport`` (small 320x240 / 480x272 screen, 2x2 tiles),
  ``central-station`` (one bed's tile of a central station: small, one row of compact fields),
  ``widescreen`` (1280x720 / 1024x600, waveforms left, wide value column with big numerals).
* **Font families** (``FONTS``): OpenCV Hershey, DejaVu, Liberation, Open Sans Condensed,
  Roboto Condensed, B612, Hack (monospace) and two seven-segment/LCD families (DSEG7 Classic,
  DSEG7 Modern, Debian ``fonts-dseg``). Seven-segment values have sans-serif labels.
* **Alarm limits** on about 60 % of the screens: two small numbers (high above low, or
  ``high/low`` side by side, sometimes after a bell glyph) next to the big value, as almost every
  bedside monitor draws them. Ground truth keeps them apart from the value.
* **No value**: a field may show ``--``, ``---``, ``-?-``, ``?``, ``***``, ``OFF``, ``STBY``, an
  empty tile (label only) or be absent; all are ``None`` in the truth, with what was drawn.
* **Units**: temperature in degC or degF (the value drawn in the unit shown), NIBP in mmHg or
  kPa; truth is in the reader's units (degC to 0.1, mmHg integers) converted from the digits
  drawn (``round(F - 32) * 5/9, 1)``, ``round(kPa * 7.50062)``), plus what unit was shown.
* **Colour schemes**: per-parameter colours on black (green HR, cyan SpO2, ...), all white,
  monochrome green, amber, and dark text on a light background.
* **Clutter**: synthetic ECG/pleth/resp waveforms, grid lines, tile borders, a clock, bed
  number, alarm banner, distractor parameters (PR, etCO2, ST, Pulse) that must not be read.
* **Photo**: perspective (tilt up to ~25 degrees about either axis), glare spot, moire,
  blur, brightness/contrast, sensor noise, JPEG, a corner occluded (never over a value: the
  truth of an occluded field would be unknowable); ``lossy=False`` skips noise and JPEG.

``render_screen(seed)`` draws layout and font families from the seed; ``layout=`` and ``font=``
pin them (the recipes split tuning and held-out evaluation by family: ``TUNE_LAYOUTS``,
``TUNE_FONTS`` and the rest). Everything comes from ``numpy.random.default_rng(seed)``; with the
same OpenCV, Pillow and font files the pixels are identical run to run.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_ROOT = Path("/usr/share/fonts")
# family -> (value fonts, label fonts); paths relative to FONT_ROOT. "hershey" is OpenCV's.
FONTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hershey": ((), ()),
    "dejavu": (
        (
            "truetype/dejavu/DejaVuSans.ttf",
            "truetype/dejavu/DejaVuSans-Bold.ttf",
            "truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
            "truetype/dejavu/DejaVuSansMono-Bold.ttf",
        ),
        ("truetype/dejavu/DejaVuSans.ttf", "truetype/dejavu/DejaVuSans-Bold.ttf"),
    ),
    "liberation": (
        (
            "truetype/liberation2/LiberationSans-Regular.ttf",
            "truetype/liberation2/LiberationSans-Bold.ttf",
        ),
        (
            "truetype/liberation2/LiberationSans-Regular.ttf",
            "truetype/liberation2/LiberationSans-Bold.ttf",
        ),
    ),
    "opensans-condensed": (
        ("truetype/open-sans/OpenSans-CondBold.ttf", "truetype/open-sans/OpenSans-CondLight.ttf"),
        ("truetype/open-sans/OpenSans-Regular.ttf", "truetype/open-sans/OpenSans-Semibold.ttf"),
    ),
    "roboto-condensed": (
        (
            "truetype/roboto/unhinted/RobotoCondensed-Bold.ttf",
            "truetype/roboto/unhinted/RobotoCondensed-Medium.ttf",
            "truetype/roboto/unhinted/RobotoCondensed-Light.ttf",
        ),
        ("truetype/roboto/unhinted/RobotoCondensed-Regular.ttf",),
    ),
    "b612": (
        ("opentype/b612/B612-Bold.otf", "opentype/b612/B612-Regular.otf"),
        ("opentype/b612/B612-Regular.otf",),
    ),
    "hack": (
        ("truetype/hack/Hack-Bold.ttf", "truetype/hack/Hack-Regular.ttf"),
        ("truetype/hack/Hack-Regular.ttf",),
    ),
    "dseg7-classic": (
        ("truetype/dseg/DSEG7Classic-Bold.ttf", "truetype/dseg/DSEG7Classic-Regular.ttf"),
        ("truetype/dejavu/DejaVuSans.ttf", "truetype/liberation2/LiberationSans-Regular.ttf"),
    ),
    "dseg7-modern": (
        ("truetype/dseg/DSEG7Modern-Bold.ttf", "truetype/dseg/DSEG7Modern-Regular.ttf"),
        ("truetype/open-sans/OpenSans-Regular.ttf", "truetype/dejavu/DejaVuSans-Bold.ttf"),
    ),
}
HERSHEY = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
)
SEVEN_SEGMENT = ("dseg7-classic", "dseg7-modern")
LAYOUTS = (
    "side-column",
    "left-column",
    "bottom-row",
    "bottom-bar",
    "top-bar",
    "grid-6",
    "grid-4",
    "vertical-list",
    "two-column",
    "transport",
    "central-station",
    "widescreen",
)
# Tuning (calibration, threshold) uses only these; the others are held out from all tuning.
TUNE_LAYOUTS = (
    "side-column",
    "bottom-row",
    "grid-6",
    "vertical-list",
    "transport",
    "top-bar",
    "two-column",
    "grid-4",
)
TUNE_FONTS = ("hershey", "dejavu", "opensans-condensed", "b612", "dseg7-classic")
HELDOUT_LAYOUTS = tuple(x for x in LAYOUTS if x not in TUNE_LAYOUTS)
HELDOUT_FONTS = tuple(x for x in FONTS if x not in TUNE_FONTS)

FIELDS = ("hr", "spo2", "nibp", "rr", "temp")
LABELS = {
    "hr": ("HR", "HR", "HR bpm", "ECG HR"),
    "spo2": ("SpO2", "SpO2", "SPO2", "SpO2 %"),
    "nibp": ("NIBP", "NBP", "BP"),
    "rr": ("RR", "Resp", "RESP", "AwRR"),
    "temp": ("Temp", "T", "TEMP", "T1"),
}
MARKERS = ("--", "---", "-?-", "?", "***", "OFF", "STBY", "")  # "": label drawn, value blank
SCHEMES = ("parameter", "white", "green", "amber", "light")
PARAM_COLOURS = {  # BGR
    "hr": [(0, 255, 0)],
    "spo2": [(255, 255, 0)],
    "nibp": [(255, 255, 255), (60, 60, 255)],
    "rr": [(0, 255, 255)],
    "temp": [(255, 255, 255), (255, 0, 255), (0, 165, 255)],
}
KPA_PER_MMHG = 1 / 7.50062


def font_hashes() -> dict[str, str]:
    """sha256 (first 16 hex digits) of every font file the generator draws with."""
    files = sorted({f for values, labels in FONTS.values() for f in (*values, *labels)})
    return {f: hashlib.sha256((FONT_ROOT / f).read_bytes()).hexdigest()[:16] for f in files}


def _values(rng: np.random.Generator) -> dict[str, Any]:
    sys_ = int(rng.integers(75, 221))
    dia = int(rng.integers(35, min(120, sys_ - 15) + 1))
    return {
        "hr": int(rng.integers(30, 181)),
        "spo2": int(rng.integers(75, 101)),
        "nibp": [sys_, dia],
        "rr": int(rng.integers(4, 41)),
        "temp": round(float(rng.integers(340, 412)) / 10, 1),
    }


def _limits(rng: np.random.Generator, field: str) -> tuple[str, str]:
    """Alarm limits as drawn (high, low): numbers of the parameter's own range."""
    hi, lo = {
        "hr": (int(rng.choice([100, 110, 120, 130, 150])), int(rng.choice([40, 45, 50, 60]))),
        "spo2": (100, int(rng.choice([85, 88, 90, 92]))),
        "nibp": (int(rng.choice([160, 180, 200])), int(rng.choice([80, 90, 100]))),
        "rr": (int(rng.choice([25, 30, 35])), int(rng.choice([6, 8, 10]))),
        "temp": (float(rng.choice([38.0, 38.5, 39.0])), float(rng.choice([35.0, 35.5, 36.0]))),
    }[field]
    if field == "temp":
        return f"{hi:.1f}", f"{lo:.1f}"
    return str(hi), str(lo)


@dataclass
class _Painter:
    """Draws text in one font family: Hershey with OpenCV, TTF/OTF with PIL (measured first)."""

    img: np.ndarray
    family: str
    value_font: Any
    label_font: Any
    thickness: int
    cache: dict[tuple[str, int], Any] = field(default_factory=dict)

    def _ttf(self, font: str, px: float) -> Any:
        key = (font, max(int(px), 6))
        if key not in self.cache:
            self.cache[key] = ImageFont.truetype(str(FONT_ROOT / font), key[1])
        return self.cache[key]

    def size(self, text: str, font: Any, px: float) -> tuple[int, int]:
        if isinstance(font, int):
            scale = cv2.getFontScaleFromHeight(font, max(int(px), 4), self.thickness)
            (w, h), base = cv2.getTextSize(text, font, scale, self.thickness)
            return w, h + base // 2
        _, _, x1, y1 = self._ttf(font, px).getbbox(text)
        return x1, y1

    def fit(self, text: str, font: Any, px: float, max_w: int, max_h: int) -> float:
        while px > 7:
            w, h = self.size(text, font, px)
            if w <= max_w and h <= max_h:
                break
            px *= 0.92
        return px

    def draw(self, text: str, font: Any, px: float, x: int, y: int, colour: tuple) -> None:
        """Text with its top-left corner at (x, y)."""
        if not text:
            return
        if isinstance(font, int):
            scale = cv2.getFontScaleFromHeight(font, max(int(px), 4), self.thickness)
            (_, h), _ = cv2.getTextSize(text, font, scale, self.thickness)
            cv2.putText(
                self.img, text, (x, y + h), font, scale, colour, self.thickness, cv2.LINE_AA
            )
            return
        pil = Image.fromarray(self.img[..., ::-1])
        ImageDraw.Draw(pil).text((x, y), text, font=self._ttf(font, px), fill=colour[::-1])
        self.img[:] = np.asarray(pil)[..., ::-1]


def _jitter(rng: np.random.Generator, colour: tuple[int, ...]) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in colour)  # type: ignore[return-value]


def _waveforms(rng: np.random.Generator, img: np.ndarray, box: Sequence[int], ink: list) -> None:
    x0, y0, x1, y1 = box
    if x1 - x0 < 20 or y1 - y0 < 20:
        return
    if rng.random() < 0.5:  # grid lines behind the waves
        step = int(rng.integers(16, 40))
        grid = tuple(int(c * 0.35 + 20) for c in ink[0])
        for x in range(x0, x1, step):
            cv2.line(img, (x, y0), (x, y1 - 1), grid, 1)
        for y in range(y0, y1, step):
            cv2.line(img, (x0, y), (x1 - 1, y), grid, 1)
    rows = int(rng.integers(2, 5))
    band = (y1 - y0) / rows
    for r in range(rows):
        t = np.linspace(0, 1, max(x1 - x0, 2))
        period = rng.uniform(0.05, 0.2)
        phase = (t / period) % 1.0
        if r == 0:  # ECG-like spikes
            y = np.exp(-(((phase - 0.3) / 0.015) ** 2)) - 0.2 * np.exp(
                -(((phase - 0.5) / 0.06) ** 2)
            )
        else:
            y = np.sin(2 * np.pi * phase) * 0.4 + 0.1 * np.sin(4 * np.pi * phase)
        ys = y0 + band * (r + 0.55) - y * band * 0.35
        pts = np.stack([x0 + np.arange(len(t)), ys], axis=1).astype(np.int32)
        cv2.polylines(img, [pts], False, ink[r % len(ink)], int(rng.integers(1, 3)), cv2.LINE_AA)


Cell = tuple[int, int, int, int]


def _grid(x0: int, y0: int, x1: int, y1: int, cols: int, rows: int) -> list[Cell]:
    pw, ph = (x1 - x0) // cols, (y1 - y0) // rows
    return [
        (x0 + c * pw, y0 + r * ph, x0 + (c + 1) * pw, y0 + (r + 1) * ph)
        for r in range(rows)
        for c in range(cols)
    ]


def _layout(rng: np.random.Generator, layout: str) -> tuple[int, int, list[Cell], Cell | None]:
    """Canvas size, parameter tiles (in order of filling) and the waveform area."""
    if layout == "transport":
        w, h = ((320, 240), (480, 272))[int(rng.integers(0, 2))]
        return w, h, _grid(0, 0, w, h, 2, 2), None
    if layout == "central-station":
        w, h = ((640, 200), (720, 240), (560, 180))[int(rng.integers(0, 3))]
        top = int(h * 0.45)
        return w, h, _grid(0, top, w, h, 5, 1), (0, 0, w, top)
    if layout == "widescreen":
        w, h = ((1280, 720), (1024, 600))[int(rng.integers(0, 2))]
        split = int(w * rng.uniform(0.5, 0.6))
        return w, h, _grid(split, 0, w, h, 2, 3), (0, 0, split, h)
    w, h = ((640, 480), (800, 480), (800, 600), (720, 540))[int(rng.integers(0, 4))]
    if layout == "side-column":
        split = int(w * rng.uniform(0.55, 0.65))
        return w, h, _grid(split, 0, w, h, 1, 6), (0, 0, split, h)
    if layout == "left-column":
        split = int(w * rng.uniform(0.35, 0.45))
        return w, h, _grid(0, 0, split, h, 1, 6), (split, 0, w, h)
    if layout == "bottom-row":
        top = int(h * rng.uniform(0.42, 0.52))
        return w, h, _grid(0, top, w, h, 3, 2), (0, 0, w, top)
    if layout == "bottom-bar":
        top = int(h * rng.uniform(0.62, 0.72))
        return w, h, _grid(0, top, w, h, 5, 1), (0, 0, w, top)
    if layout == "top-bar":
        bottom = int(h * rng.uniform(0.3, 0.38))
        return w, h, _grid(0, 0, w, bottom, 5, 1), (0, bottom, w, h)
    if layout == "grid-6":
        cols = int(rng.choice([2, 3]))
        return w, h, _grid(0, 0, w, h, cols, 6 // cols), None
    if layout == "grid-4":
        return w, h, _grid(0, 0, w, h, 2, 2), None
    if layout == "vertical-list":
        return w, h, _grid(0, 0, w, h, 1, 6), None
    if layout == "two-column":
        split = int(w * rng.uniform(0.4, 0.5))
        return w, h, _grid(split, 0, w, h, 2, 3), (0, 0, split, h)
    raise ValueError(f"unknown layout family {layout!r}")


def _distractor(rng: np.random.Generator) -> tuple[str, str]:
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return "PR", str(int(rng.integers(40, 160)))
    if kind == 1:
        return "etCO2", str(int(rng.integers(25, 50)))
    if kind == 2:
        return "ST", f"{rng.uniform(-0.3, 0.3):.1f}"
    return "Pulse", str(int(rng.integers(40, 160)))


def _bell(img: np.ndarray, x: int, y: int, size: int, colour: tuple) -> None:
    """A small alarm-bell glyph (a filled trapezoid and clapper)."""
    s = max(size, 6)
    pts = np.array(
        [[x + s // 3, y], [x + 2 * s // 3, y], [x + s, y + 3 * s // 4], [x, y + 3 * s // 4]]
    )
    cv2.fillPoly(img, [pts.astype(np.int32)], colour, cv2.LINE_AA)
    cv2.circle(img, (x + s // 2, y + s - s // 8), max(1, s // 8), colour, -1, cv2.LINE_AA)


def _shown(field: str, value: Any, rng: np.random.Generator) -> tuple[str, str, Any]:
    """(text drawn, unit shown, truth in the reader's units) for a value that is shown."""
    if field == "nibp":
        if rng.random() < 0.12:
            s, d = round(value[0] * KPA_PER_MMHG, 1), round(value[1] * KPA_PER_MMHG, 1)
            return f"{s:.1f}/{d:.1f}", "kPa", [round(s * 7.50062), round(d * 7.50062)]
        return f"{value[0]}/{value[1]}", "mmHg", list(value)
    if field == "temp":
        if rng.random() < 0.2:
            f = round(value * 9 / 5 + 32, 1)
            return f"{f:.1f}", "°F", round((f - 32) * 5 / 9, 1)
        return f"{value:.1f}", "°C", value
    return str(value), {"hr": "bpm", "spo2": "%", "rr": "rpm"}[field], value


def _colours(rng: np.random.Generator, scheme: str) -> tuple[tuple[int, int, int], dict[str, Any]]:
    if scheme == "light":
        bg = tuple(int(v) for v in rng.integers(200, 256, 3))
        ink = {f: _jitter(rng, (int(rng.integers(0, 60)),) * 3) for f in FIELDS}
        return bg, ink  # type: ignore[return-value]
    bg = tuple(int(v) for v in rng.integers(0, 31, 3))
    if scheme == "parameter":
        ink = {f: _jitter(rng, c[int(rng.integers(0, len(c)))]) for f, c in PARAM_COLOURS.items()}
    else:
        base = {"white": (235, 235, 235), "green": (40, 230, 40), "amber": (0, 180, 255)}[scheme]
        ink = {f: _jitter(rng, base) for f in FIELDS}
    return bg, ink  # type: ignore[return-value]


def render_screen(
    seed: int, *, layout: str | None = None, font: str | None = None, lossy: bool = True
) -> tuple[np.ndarray, dict[str, Any]]:
    """One BGR uint8 screen and its ground truth.

    Truth: ``hr``, ``spo2``, ``nibp_systolic``, ``nibp_diastolic``, ``rr``, ``temperature`` in
    the reader's units (None where no value is shown), ``alarm_limits`` {field: [low, high]}
    as drawn, ``shown`` {field: "value" | the marker drawn | "blank" | "absent"}, ``units``
    {field: unit drawn}, and the families. ``lossy=False`` skips sensor noise and JPEG.
    """
    rng = np.random.default_rng(seed)
    layout = layout or LAYOUTS[int(rng.integers(0, len(LAYOUTS)))]
    font = font or tuple(FONTS)[int(rng.integers(0, len(FONTS)))]
    scheme = SCHEMES[int(rng.integers(0, len(SCHEMES)))]
    w, h, cells, wave = _layout(rng, layout)
    bg, ink = _colours(rng, scheme)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bg
    if font == "hershey":
        vf: Any = HERSHEY[int(rng.integers(0, len(HERSHEY)))]
        lf: Any = HERSHEY[int(rng.integers(0, len(HERSHEY)))]
    else:
        values_fonts, label_fonts = FONTS[font]
        vf = values_fonts[int(rng.integers(0, len(values_fonts)))]
        lf = label_fonts[int(rng.integers(0, len(label_fonts)))]
    paint = _Painter(img, font, vf, lf, int(rng.integers(1, 4)))
    if wave is not None:
        _waveforms(rng, img, wave, [ink["hr"], ink["spo2"], ink["rr"]])
    values = _values(rng)
    order = list(FIELDS)
    if rng.random() < 0.5:
        rng.shuffle(order)
    if rng.random() < 0.07:
        order.remove(str(rng.choice(order)))  # a parameter not monitored at all
    with_limits = bool(rng.random() < 0.6)
    borders = bool(rng.random() < 0.6)
    inline = layout in ("vertical-list", "central-station") or bool(rng.random() < 0.2)
    truth: dict[str, Any] = {}
    limits: dict[str, list[float]] = {}
    shown: dict[str, str] = {}
    units: dict[str, str] = {}
    occluded = int(rng.integers(0, 4)) if rng.random() < 0.15 else None
    extras = [cell for cell in cells[len(order) :]]
    for name, cell in zip(order, cells, strict=False):
        colour = ink[name]
        x0, y0, x1, y1 = cell
        cw, ch = x1 - x0, y1 - y0
        if borders:
            cv2.rectangle(
                img, (x0 + 1, y0 + 1), (x1 - 2, y1 - 2), tuple(int(c * 0.4 + 40) for c in colour), 1
            )
        label = LABELS[name][int(rng.integers(0, len(LABELS[name])))]
        text, unit, value_truth = _shown(name, values[name], rng)
        if font == "hershey":  # no degree glyph in the Hershey fonts
            unit = unit.replace("°", "")
        missing = rng.random() < 0.1
        if missing:
            marker = MARKERS[int(rng.integers(0, len(MARKERS)))]
            text = marker
            value_truth = None
            shown[name] = marker or "blank"
        else:
            shown[name] = "value"
        truth[name] = value_truth
        units[name] = unit
        pad = max(3, int(min(cw, ch) * 0.05))
        small = 0.16 if inline else 0.2
        lpx = paint.fit(label, lf, ch * rng.uniform(small, small + 0.08), cw // 2, ch // 3)
        draw_limits = (with_limits and name != "nibp") or (with_limits and rng.random() < 0.5)
        hi, lo = _limits(rng, name)
        limits_left = bool(rng.random() < 0.3)
        lim_scale = rng.uniform(0.75, 1.0)
        value_font = lf if text in ("OFF", "STBY", "?", "***") and font in SEVEN_SEGMENT else vf
        probe = text or "888"
        fill = rng.uniform(0.75, 0.98)
        for _ in range(3):  # a monitor draws the value well above the label's size
            lw, lh = paint.size(label, lf, lpx)
            lim_px = lpx * lim_scale
            lim_w = max(paint.size(hi, lf, lim_px)[0], paint.size(lo, lf, lim_px)[0])
            reserve = lim_w + 2 * pad if draw_limits else 0
            if inline:
                vx0 = x0 + lw + 2 * pad + (reserve if limits_left else 0)
                vx1 = x1 - pad - (0 if limits_left else reserve)
                vy0, vy1 = y0 + pad, y1 - pad
            else:
                vx0 = x0 + pad + (reserve if limits_left else 0)
                vx1 = x1 - pad - (0 if limits_left else reserve)
                vy0, vy1 = y0 + lh + 2 * pad, y1 - pad
            avail_w, avail_h = max(vx1 - vx0, 8), max(vy1 - vy0, 8)
            vpx = paint.fit(probe, value_font, avail_h * fill, avail_w, avail_h)
            if vpx >= 1.6 * lpx or lpx <= 8:
                break
            lpx = max(vpx / 1.6, 8)
        if inline:
            paint.draw(label, lf, lpx, x0 + pad, y0 + (ch - lh) // 2, colour)
        else:
            paint.draw(label, lf, lpx, x0 + pad, y0 + pad, colour)
            if name != "nibp" and rng.random() < 0.5:  # the unit beside the label
                paint.draw(unit, lf, lpx * 0.8, x0 + 2 * pad + lw, y0 + pad, colour)
        vw, vh = paint.size(probe, value_font, vpx)
        vx = vx0 + int(rng.integers(0, max(1, avail_w - vw)))
        vy = vy0 + (avail_h - vh) // 2
        if font in SEVEN_SEGMENT and "/" in text:  # no slash glyph: draw it in the label font
            sys_text, dia_text = text.split("/")
            paint.draw(sys_text, value_font, vpx, vx, vy, colour)
            sx = vx + paint.size(sys_text, value_font, vpx)[0] + 1
            paint.draw("/", lf, vpx, sx, vy, colour)
            dx = sx + paint.size("/", lf, vpx)[0] + 1
            paint.draw(dia_text, value_font, vpx, dx, vy, colour)
        else:
            paint.draw(text, value_font, vpx, vx, vy, colour)
        lim_px = min(lim_px, vpx / 1.7)  # limits are always much smaller than the value
        lim_h = paint.size(hi, lf, lim_px)[1]
        if (name == "temp" and not missing and unit == "°F") or (name == "nibp" and unit == "kPa"):
            # The unit must be legible when it is not the default one.
            upx = max(lpx * 0.8, 9)
            uw, uh = paint.size(unit, lf, upx)
            ux = min(vx + vw + pad, x1 - uw - 1)
            uy = min(vy + vh - uh, y1 - uh - 1)
            if inline or ux <= vx + vw:  # no room after the value: beside the label
                ux, uy = x0 + pad, min(y0 + pad + lh + pad, y1 - uh - 1)
                if inline:
                    ux, uy = x0 + pad, min(y0 + (ch + lh) // 2 + 2, y1 - uh - 1)
            paint.draw(unit, lf, upx, ux, uy, colour)
        if draw_limits and lim_h * 2 + pad < ch:
            lx = x0 + pad if limits_left else x1 - pad - lim_w
            if inline and limits_left:  # between the label and the value
                lx = x0 + lw + 2 * pad
            if not inline and limits_left:
                ly = vy0
            else:
                ly = max(y0 + pad, vy + (vh - 2 * lim_h - pad) // 2)
            bx = lx - lim_h - 2 if not limits_left else lx + lim_w + 2
            # A monitor never draws its bell over the value (the draw is skipped, the seed's
            # random sequence is unchanged).
            if rng.random() < 0.3 and (bx + lim_h < vx or bx > vx + vw):
                _bell(img, bx, ly, lim_h, colour)
            paint.draw(hi, lf, lim_px, lx, ly, colour)
            paint.draw(lo, lf, lim_px, lx, ly + lim_h + max(2, pad // 2), colour)
            limits[name] = [float(lo), float(hi)]
    for cell in extras:
        if rng.random() < 0.7:
            x0, y0, x1, y1 = cell
            label, text = _distractor(rng)
            colour = _jitter(rng, (200, 200, 200) if scheme != "light" else (40, 40, 40))
            pad = max(3, int(min(x1 - x0, y1 - y0) * 0.05))
            lpx = paint.fit(label, lf, (y1 - y0) * 0.2, (x1 - x0) // 2, (y1 - y0) // 3)
            paint.draw(label, lf, lpx, x0 + pad, y0 + pad, colour)
            _, lh = paint.size(label, lf, lpx)
            avail_h = y1 - y0 - lh - 3 * pad
            vpx = paint.fit(text, vf, avail_h * 0.8, x1 - x0 - 2 * pad, avail_h)
            paint.draw(text, vf, vpx, x0 + pad, y0 + lh + 2 * pad, colour)
    if wave is not None and rng.random() < 0.6:  # clock, bed number or alarm banner
        kind = int(rng.integers(0, 3))
        note = (
            f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}",
            f"Bed {int(rng.integers(1, 40))}",
            str(rng.choice(["** HR HIGH", "SpO2 LOW", "LEADS OFF", "NIBP DONE"])),
        )[kind]
        org = (wave[0] + 6, wave[1] + 18)
        cv2.putText(img, note, org, cv2.FONT_HERSHEY_PLAIN, 1.2, (180, 180, 180), 1, cv2.LINE_AA)
    for name in FIELDS:  # fields that found no tile
        if name not in shown:
            truth[name] = None
            shown[name] = "absent"
    img = _photo(rng, img, lossy, occluded, cells, order)
    nibp = truth["nibp"]
    return img, {
        "seed": seed,
        "layout": layout,
        "font": font,
        "scheme": scheme,
        "hr": truth["hr"],
        "spo2": truth["spo2"],
        "nibp_systolic": nibp[0] if nibp else None,
        "nibp_diastolic": nibp[1] if nibp else None,
        "rr": truth["rr"],
        "temperature": truth["temp"],
        "alarm_limits": limits,
        "shown": shown,
        "units": units,
    }


def _photo(
    rng: np.random.Generator,
    img: np.ndarray,
    lossy: bool,
    occluded: int | None,
    cells: list[Cell],
    order: list[str],
) -> np.ndarray:
    h, w = img.shape[:2]
    if occluded is not None:  # a hand or a cable over one corner, clear of every tile
        corner = [(0, 0), (w, 0), (w, h), (0, h)][occluded]
        r = int(min(w, h) * rng.uniform(0.05, 0.1))
        cx, cy = min(max(corner[0], 0), w - 1), min(max(corner[1], 0), h - 1)
        if not any(
            x0 - r <= cx <= x1 + r and y0 - r <= cy <= y1 + r
            for x0, y0, x1, y1 in cells[: len(order)]
        ):
            cv2.circle(img, corner, r, (20, 20, 25), -1)
    if rng.random() < 0.2:  # moire: a faint high-frequency interference pattern
        yy, xx = np.mgrid[0:h, 0:w]
        f = rng.uniform(0.6, 1.2)
        pattern = 6 * np.sin(f * xx + 0.7 * f * yy)
        img = np.clip(img.astype(np.float32) + pattern[..., None], 0, 255).astype(np.uint8)
    if rng.random() < 0.65:  # perspective: the camera tilted about a vertical and horizontal axis
        yaw, pitch = (math.radians(a) for a in rng.uniform(-25, 25, 2))
        dx = 0.5 * math.sin(abs(yaw)) * 0.35
        dy = 0.5 * math.sin(abs(pitch)) * 0.35
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        far_right, far_bottom = yaw > 0, pitch > 0
        shrink = np.zeros((4, 2), np.float32)
        for i, (sx, sy) in enumerate(((0, 0), (1, 0), (1, 1), (0, 1))):
            if (sx == 1) == far_right:
                shrink[i, 1] += dx * h * (1 if sy == 0 else -1)
            if (sy == 1) == far_bottom:
                shrink[i, 0] += dy * w * (1 if sx == 0 else -1)
        jitter = rng.uniform(0, 0.02, (4, 2)).astype(np.float32) * np.float32([w, h])
        inward = np.float32([[1, 1], [-1, 1], [-1, -1], [1, -1]])
        dst = src + shrink + inward * jitter
        m = cv2.getPerspectiveTransform(src, dst)
        img = cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    if rng.random() < 0.25:  # glare: a soft bright spot
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = min(w, h) * rng.uniform(0.08, 0.2)
        yy, xx = np.mgrid[0:h, 0:w]
        spot = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)) * rng.uniform(40, 110)
        img = np.clip(img.astype(np.float32) + spot[..., None], 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.4)))
    out = img.astype(np.float32)
    if rng.random() < 0.5:
        out = out * rng.uniform(0.7, 1.15) + rng.uniform(-10, 25)
    if rng.random() < 0.4:  # luminance noise (the same on the three channels)
        noise = rng.normal(0, rng.uniform(1.5, 5), out.shape[:2])[..., None]
        out += noise if lossy else 0.0
    img = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    quality = int(rng.integers(50, 91))
    if rng.random() < 0.5 and lossy:
        _, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img
