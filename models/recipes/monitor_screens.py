"""Rendered patient-monitor screens with known vital signs (evaluation data for monitor-reader).

No public photo set of bedside-monitor screens with value labels is installable offline, so the
evaluation screens are drawn, deterministically from a seed:

1. canvas: one of 640x480, 800x480, 800x600, 720x540; near-black background (0-30 per channel);
2. layout (one of three): ``side`` (waveforms on the left 55-62 %, a column of parameter panels
   on the right), ``bottom`` (waveforms on top, two rows of three panels below), ``grid`` (2x3
   or 3x2 panels, no waveforms); waveforms are synthetic ECG/pleth/resp polylines; panels may have
   thin grey borders;
3. parameters: HR (green), SpO2 (cyan), NIBP sys/dia with mean in parentheses (white or red),
   RR (yellow), Temp (white, magenta or orange), each colour jittered by +-25; values uniform in
   plausible ranges (HR 38-165 bpm, SpO2 82-100 %, sys 80-200 / dia 40-115 mmHg with dia <= sys -
   20, RR 6-35 /min, temperature 34.5-40.4 degC to 0.1); each field is missing with probability
   0.08 (shown as ``--``, ``---``, ``-?-`` or not drawn at all: ground truth None);
4. distractors in the spare panel or corners: ``PR`` pulse rate, ``etCO2``, ``ST``, a clock, a
   bed number, alarm banners;
5. labels: HR / HR bpm / Pulse... per field a random label style (``HR``, ``SpO2``/``SPO2``,
   ``NIBP``/``NBP``/``BP``, ``RR``/``Resp``/``RESP``, ``Temp``/``T``/``TEMP``), small units text
   (``bpm``, ``%``, ``mmHg``, ``rpm``/``/min``, ``C``/``°C``) beside or under the label; the label is
   top-left of its panel (value below/right, large) or inline to the left of the value;
6. fonts: per screen either OpenCV Hershey fonts (SIMPLEX, DUPLEX, COMPLEX, TRIPLEX, thickness
   1-4) or one of the DejaVu TTF fonts in /usr/share/fonts drawn with PIL (label and value fonts
   drawn independently from the list); value text is shrunk until it fits its panel;
7. photo effects, each with a probability: perspective warp (each corner moved inwards by up to 6 %
   of the size, black border), Gaussian blur (sigma 0.6-1.6), brightness/contrast change, Gaussian
   sensor noise (sigma 2-7) and JPEG re-compression (quality 55-90).

Everything comes from ``numpy.random.default_rng(seed)``; with the same OpenCV, Pillow and font
files the pixels are identical run to run (the recipe records the font files' sha256).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
TTF_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
)
HERSHEY = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
)
SIZES = ((640, 480), (800, 480), (800, 600), (720, 540))
FIELDS = ("hr", "spo2", "nibp", "rr", "temp")
LABELS = {
    "hr": ("HR", "HR", "HR bpm"),
    "spo2": ("SpO2", "SpO2", "SPO2"),
    "nibp": ("NIBP", "NBP", "BP"),
    "rr": ("RR", "Resp", "RESP"),
    "temp": ("Temp", "T", "TEMP"),
}
UNITS = {
    "hr": ("bpm",),
    "spo2": ("%",),
    "nibp": ("mmHg",),
    "rr": ("rpm", "/min"),
    "temp": ("C", "°C"),
}
COLOURS = {  # BGR
    "hr": [(0, 255, 0)],
    "spo2": [(255, 255, 0)],
    "nibp": [(255, 255, 255), (60, 60, 255)],
    "rr": [(0, 255, 255)],
    "temp": [(255, 255, 255), (255, 0, 255), (0, 165, 255)],
}
MISSING_TEXT = ("--", "---", "-?-", None)


def font_hashes() -> dict[str, str]:
    return {
        name: hashlib.sha256((FONT_DIR / name).read_bytes()).hexdigest()[:16] for name in TTF_FONTS
    }


def _values(rng: np.random.Generator) -> dict[str, Any]:
    sys_ = int(rng.integers(80, 201))
    dia = int(rng.integers(40, min(115, sys_ - 20) + 1))
    return {
        "hr": int(rng.integers(38, 166)),
        "spo2": int(rng.integers(82, 101)),
        "nibp": [sys_, dia],
        "rr": int(rng.integers(6, 36)),
        "temp": round(float(rng.integers(345, 405)) / 10, 1),
    }


def _value_text(field: str, value: Any) -> str:
    if field == "nibp":
        return f"{value[0]}/{value[1]}"
    if field == "temp":
        return f"{value:.1f}"
    return str(value)


@dataclass
class _Painter:
    """Draws text with either a Hershey font (cv2) or a TTF font (PIL), measuring first."""

    img: np.ndarray
    hershey: bool
    label_font: Any
    value_font: Any
    thickness: int

    def size(self, text: str, font: Any, px: float) -> tuple[int, int]:
        if self.hershey:
            scale = cv2.getFontScaleFromHeight(font, max(int(px), 4), self.thickness)
            (w, h), base = cv2.getTextSize(text, font, scale, self.thickness)
            return w, h + base // 2
        ttf = ImageFont.truetype(str(FONT_DIR / font), max(int(px), 6))
        _, _, x1, y1 = ttf.getbbox(text)
        return x1, y1

    def fit(self, text: str, font: Any, px: float, max_w: int, max_h: int) -> float:
        while px > 8:
            w, h = self.size(text, font, px)
            if w <= max_w and h <= max_h:
                break
            px *= 0.9
        return px

    def draw(self, text: str, font: Any, px: float, x: int, y: int, colour: tuple) -> None:
        """Text with its top-left corner at (x, y)."""
        if self.hershey:
            scale = cv2.getFontScaleFromHeight(font, max(int(px), 4), self.thickness)
            (_, h), _ = cv2.getTextSize(text, font, scale, self.thickness)
            cv2.putText(
                self.img, text, (x, y + h), font, scale, colour, self.thickness, cv2.LINE_AA
            )
            return
        ttf = ImageFont.truetype(str(FONT_DIR / font), max(int(px), 6))
        pil = Image.fromarray(self.img[..., ::-1])
        ImageDraw.Draw(pil).text((x, y), text, font=ttf, fill=colour[::-1])
        self.img[:] = np.asarray(pil)[..., ::-1]


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in colour)  # type: ignore[return-value]


def _waveforms(rng: np.random.Generator, img: np.ndarray, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    rows = int(rng.integers(2, 4))
    colours = [(0, 255, 0), (255, 255, 0), (0, 255, 255)]
    band = (y1 - y0) / rows
    for r in range(rows):
        t = np.linspace(0, 1, max(x1 - x0, 2))
        period = rng.uniform(0.08, 0.2)
        phase = (t / period) % 1.0
        if r == 0:  # ECG-like spikes
            y = np.exp(-(((phase - 0.3) / 0.015) ** 2)) - 0.2 * np.exp(
                -(((phase - 0.5) / 0.06) ** 2)
            )
        else:
            y = np.sin(2 * np.pi * phase) * 0.4 + 0.1 * np.sin(4 * np.pi * phase)
        ys = y0 + band * (r + 0.55) - y * band * 0.35
        pts = np.stack([x0 + np.arange(len(t)), ys], axis=1).astype(np.int32)
        cv2.polylines(img, [pts], False, colours[r % 3], 1, cv2.LINE_AA)


def _panels(
    rng: np.random.Generator, w: int, h: int
) -> tuple[str, list[tuple[int, int, int, int]], tuple[int, int, int, int] | None]:
    layout = str(rng.choice(["side", "bottom", "grid"]))
    if layout == "side":
        split = int(w * rng.uniform(0.55, 0.62))
        n = 6
        ph = h // n
        return layout, [(split, i * ph, w, (i + 1) * ph) for i in range(n)], (0, 0, split, h)
    if layout == "bottom":
        top = int(h * rng.uniform(0.45, 0.52))
        pw, ph = w // 3, (h - top) // 2
        cells = [
            (c * pw, top + r * ph, (c + 1) * pw, top + (r + 1) * ph)
            for r in range(2)
            for c in range(3)
        ]
        return layout, cells, (0, 0, w, top)
    cols = int(rng.choice([2, 3]))
    rows = 6 // cols
    pw, ph = w // cols, h // rows
    return (
        layout,
        [(c * pw, r * ph, (c + 1) * pw, (r + 1) * ph) for r in range(rows) for c in range(cols)],
        None,
    )


def _distractor(rng: np.random.Generator) -> tuple[str, str]:
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return "PR", str(int(rng.integers(40, 160)))
    if kind == 1:
        return "etCO2", str(int(rng.integers(25, 50)))
    if kind == 2:
        return "ST", f"{rng.uniform(-0.3, 0.3):.1f}"
    return "Pulse", str(int(rng.integers(40, 160)))


def render_screen(seed: int, *, lossy: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """One BGR uint8 screen and its ground truth ``{"hr": int|None, ..., "nibp": [s, d]|None}``.

    ``lossy=False`` skips the sensor noise and JPEG steps (same layout, values and other
    effects): those screens compress well enough to ship as PNG test fixtures.
    """
    rng = np.random.default_rng(seed)
    w, h = SIZES[int(rng.integers(0, len(SIZES)))]
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 31, 3)
    hershey = bool(rng.random() < 0.5)
    if hershey:
        lf = HERSHEY[int(rng.integers(0, len(HERSHEY)))]
        vf = HERSHEY[int(rng.integers(0, len(HERSHEY)))]
    else:
        lf = TTF_FONTS[int(rng.integers(0, len(TTF_FONTS)))]
        vf = TTF_FONTS[int(rng.integers(0, len(TTF_FONTS)))]
    paint = _Painter(img, hershey, lf, vf, int(rng.integers(1, 5)))
    layout, cells, wave = _panels(rng, w, h)
    if wave is not None:
        _waveforms(rng, img, wave)
    values = _values(rng)
    order = list(FIELDS)
    if rng.random() < 0.5:
        rng.shuffle(order)
    truth: dict[str, Any] = {}
    borders = bool(rng.random() < 0.5)
    inline = bool(rng.random() < 0.3)
    for field, cell in zip([*order, "extra"], cells, strict=False):
        x0, y0, x1, y1 = cell
        cw, ch = x1 - x0, y1 - y0
        if borders:
            cv2.rectangle(img, (x0 + 1, y0 + 1), (x1 - 2, y1 - 2), (70, 70, 70), 1)
        if field == "extra":
            if rng.random() < 0.7:
                label, text = _distractor(rng)
                colour = _jitter(rng, (200, 200, 200))
            else:
                continue
        else:
            labels = LABELS[field]
            label = labels[int(rng.integers(0, len(labels)))]
            colour = _jitter(rng, COLOURS[field][int(rng.integers(0, len(COLOURS[field])))])
            if rng.random() < 0.08:
                missing = MISSING_TEXT[int(rng.integers(0, len(MISSING_TEXT)))]
                truth[field] = None
                if missing is None:
                    continue  # parameter not shown at all
                text = missing
            else:
                truth[field] = values[field]
                text = _value_text(field, values[field])
        pad = max(4, int(min(cw, ch) * 0.06))
        lpx = paint.fit(label, lf, ch * rng.uniform(0.2, 0.28), cw // 2, ch // 3)
        if inline:
            lw, lh = paint.size(label, lf, lpx)
            paint.draw(label, lf, lpx, x0 + pad, y0 + (ch - lh) // 2, colour)
            avail_w = cw - lw - 3 * pad
            vpx = paint.fit(text, vf, ch * rng.uniform(0.45, 0.7), avail_w, ch - 2 * pad)
            vw, vh = paint.size(text, vf, vpx)
            vx = x0 + lw + 2 * pad + int(rng.integers(0, max(1, avail_w - vw)))
            paint.draw(text, vf, vpx, vx, y0 + (ch - vh) // 2, colour)
        else:
            paint.draw(label, lf, lpx, x0 + pad, y0 + pad, colour)
            lw, lh = paint.size(label, lf, lpx)
            if field in UNITS and field != "nibp" and rng.random() < 0.6:
                unit = UNITS[field][int(rng.integers(0, len(UNITS[field])))]
                upx = lpx * 0.8
                if rng.random() < 0.5:  # under the label
                    paint.draw(unit, lf, upx, x0 + pad, y0 + 2 * pad + lh, colour)
                else:  # far right of the label line
                    uw, _ = paint.size(unit, lf, upx)
                    paint.draw(unit, lf, upx, x1 - pad - uw, y0 + pad, colour)
            top = y0 + lh + 2 * pad
            avail_h = y1 - top - pad
            vpx = paint.fit(text, vf, avail_h * rng.uniform(0.7, 0.95), cw - 2 * pad, avail_h)
            vw, vh = paint.size(text, vf, vpx)
            vx = x0 + pad + int(rng.integers(0, max(1, cw - 2 * pad - vw)))
            paint.draw(text, vf, vpx, vx, top + (avail_h - vh) // 2, colour)
            if field == "nibp" and truth.get("nibp") and rng.random() < 0.6:
                s, d = values["nibp"]
                mean = f"({round((s + 2 * d) / 3)})"
                mpx = lpx * 0.9
                paint.draw(mean, lf, mpx, x0 + 3 * pad + lw, y0 + pad, colour)
    for field in FIELDS:  # fields that found no panel
        truth.setdefault(field, None)
    if wave is not None and rng.random() < 0.5:  # clock / bed number over the waveforms
        clock = f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}"
        note = clock if rng.random() < 0.5 else f"Bed {int(rng.integers(1, 40))}"
        org = (wave[0] + 6, wave[1] + 18)
        cv2.putText(img, note, org, cv2.FONT_HERSHEY_PLAIN, 1.2, (180, 180, 180), 1, cv2.LINE_AA)
    img = _photo(rng, img, lossy)
    return img, {"seed": seed, "layout": layout, "font": str(lf) + "/" + str(vf), **truth}


def _photo(rng: np.random.Generator, img: np.ndarray, lossy: bool) -> np.ndarray:
    h, w = img.shape[:2]
    if rng.random() < 0.6:
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        inward = np.float32([[1, 1], [-1, 1], [-1, -1], [1, -1]])  # keep the screen in view
        dst = src + inward * rng.uniform(0, 0.06, (4, 2)).astype(np.float32) * np.float32([w, h])
        m = cv2.getPerspectiveTransform(src, dst)
        img = cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.6, 1.6)))
    out = img.astype(np.float32)
    if rng.random() < 0.5:
        out = out * rng.uniform(0.7, 1.15) + rng.uniform(-10, 25)
    if rng.random() < 0.4:  # luminance noise (the same on the three channels)
        noise = rng.normal(0, rng.uniform(1.5, 5), out.shape[:2])[..., None]
        out += noise if lossy else 0.0
    img = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    quality = int(rng.integers(55, 91))
    if rng.random() < 0.5 and lossy:
        _, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img
