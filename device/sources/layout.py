"""The standard data layout: ``DIR/<subject>/<session>_<sample>.<ext>``.

Every evaluation command reads it and every dataset command writes it (see
../shared/data/README.md). A subject is one palm (a person's left and right palms are two
subjects); sessions and samples are 1-based integers.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_STEM = re.compile(r"^(\d+)_(\d+)$")


@dataclass(frozen=True, order=True)
class SampleRef:
    """One image of the layout."""

    subject: str
    session: int
    sample: int
    path: Path


def sample_path(root: str | os.PathLike, subject: str, session: int, sample: int,
                ext: str = ".png") -> Path:
    """Where sample ``sample`` of ``session`` of ``subject`` lives under ``root``."""
    return Path(root) / subject / f"{session}_{sample:02d}{ext}"


def scan(root: str | os.PathLike) -> list[SampleRef]:
    """All images of a layout, sorted by subject, session, sample.

    Files whose names do not follow ``<session>_<sample>.<ext>`` are ignored; a root that is
    not a directory is an error that names it.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory not found: {root}")
    refs = []
    for subject_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in subject_dir.iterdir():
            m = _STEM.match(f.stem)
            if f.suffix.lower() in IMAGE_EXTENSIONS and m:
                refs.append(SampleRef(subject_dir.name, int(m.group(1)), int(m.group(2)), f))
    return sorted(refs)


def by_subject(refs: list[SampleRef]) -> dict[str, list[SampleRef]]:
    """Group samples by subject, keeping their order."""
    out: dict[str, list[SampleRef]] = {}
    for r in refs:
        out.setdefault(r.subject, []).append(r)
    return out
