"""ICD-10-CM April 2026 tabular list (from simple-icd-10-cm 1.5.0): leaf codes, index texts and
held-out evaluation queries.

* Leaves: every ``<diag>`` element without a child ``<diag>`` (36,343 codes). Codes whose
  category has a ``<sevenChrDef>`` (injuries, pregnancy, some musculoskeletal codes) need a
  7th character before they are billable; the index suggests the code up to its 6th character
  and says so (``needs_7th``), rather than multiplying the index by up to 16 near-identical
  "initial/subsequent/sequela" rows.
* Index texts: the code's own ``<desc>``, and that ``<desc>`` followed by the ``<desc>`` of its
  ancestors (parent subcategory, 3-character category, section title); never any ``<note>``: inclusion terms,
  includes/excludes notes and "code also" notes are not read at all, so the evaluation queries
  (the leaves' ``<inclusionTerm>`` notes) cannot leak into the index.
* Queries: the ``<inclusionTerm>`` notes of the leaves, each paired with its code. Notes that
  are the same text as their code's own description (case-insensitive) are dropped: a query
  that is literally in the index text measures nothing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import resources

SOURCE = "simple-icd-10-cm==1.5.0 (CDC/NCHS ICD-10-CM tabular list, April 1 2026)"
XML_NAME = "icd10c-tabular-April-1-2026.xml"
_SECTION_RANGE = re.compile(r"\s*\([A-Z0-9.]+-[A-Z0-9.]+\)\s*$")


@dataclass(frozen=True)
class Leaf:
    code: str  # with the dot, e.g. "A01.02"
    desc: str
    ancestors: tuple[str, ...]  # descriptions: parent first, section title last
    chapter: int
    needs_7th: bool
    inclusion_terms: tuple[str, ...]

    @property
    def category(self) -> str:
        return self.code[:3]


def _text(el: ET.Element, tag: str) -> str:
    child = el.find(tag)
    return " ".join((child.text or "").split()) if child is not None else ""


def load_leaves() -> list[Leaf]:
    """All <diag> leaves in tabular order."""
    xml = resources.files("simple_icd_10_cm.data").joinpath(XML_NAME).read_bytes()
    root = ET.fromstring(xml)
    leaves: list[Leaf] = []

    def walk(diag: ET.Element, chain: tuple[str, ...], chapter: int, seventh: bool) -> None:
        desc = _text(diag, "desc")
        seventh = seventh or diag.find("sevenChrDef") is not None
        children = diag.findall("diag")
        if not children:
            terms = tuple(
                " ".join((n.text or "").split())
                for inc in diag.findall("inclusionTerm")
                for n in inc.findall("note")
            )
            leaves.append(
                Leaf(
                    code=_text(diag, "name"),
                    desc=desc,
                    ancestors=chain,
                    chapter=chapter,
                    needs_7th=seventh,
                    inclusion_terms=tuple(t for t in terms if t),
                )
            )
        for child in children:
            walk(child, (desc, *chain), chapter, seventh)

    for chapter in root.iter("chapter"):
        number = int(_text(chapter, "name"))
        for section in chapter.findall("section"):
            title = _SECTION_RANGE.sub("", _text(section, "desc"))
            for diag in section.findall("diag"):
                walk(diag, (title,), number, False)
    return leaves


def index_text(leaf: Leaf, style: str = "context") -> str:
    """The text embedded for a leaf: ``desc`` alone or with its ancestors' descriptions."""
    if style == "desc":
        return leaf.desc
    if style == "parent":
        parent = leaf.ancestors[0] if len(leaf.ancestors) > 1 else ""
        return f"{leaf.desc}; {parent}" if parent else leaf.desc
    if style == "context":
        seen = {leaf.desc.lower()}
        parts = [leaf.desc]
        for a in leaf.ancestors:
            if a.lower() not in seen:
                seen.add(a.lower())
                parts.append(a)
        return "; ".join(parts)
    raise ValueError(style)


def queries(leaves: list[Leaf]) -> list[tuple[str, str]]:
    """(inclusion term, code) pairs; terms equal to their own code's description dropped."""
    out = []
    for leaf in leaves:
        for term in leaf.inclusion_terms:
            if term.lower() != leaf.desc.lower():
                out.append((term, leaf.code))
    return out
