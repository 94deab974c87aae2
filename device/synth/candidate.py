"""The candidate palm print and its distribution patterns (the synthetic-palm spec, seed 004,
sections 3.9-3.11): :class:`CandidateConfig` (counts, regions, the minor-line length,
thickness and density rules, stroke widths and darkness), :class:`Candidate` (the lines and
their strokes) and the rules' bounds shared by the sampler and by jitter
(:mod:`device.synth.bezier`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal, Optional, Tuple

import numpy as np

from device.synth.bezier_geometry import bezier_arc_length, lines_crossing_box

Hand = Literal["left", "right"]
RuleMode = Literal["shortest_major", "threshold", "both"]
DensityMode = Literal["grid", "region"]


@dataclass(frozen=True)
class CandidateConfig:
    """Preset distribution patterns of the candidate generator.

    Counts: majors 2..5 ([0051]), minors 5..15 ([0186]).  ``radius`` is the
    first/second preset length of the quarter discs ([0262]); ``third_side``
    the side of the third region ([0281]).  Minor length rule ([0073]) and
    thickness rule ([0074]) each take 'shortest_major', 'threshold' or 'both'
    (spec 3.9) with thresholds 0.6 (3 cm) and 0.02 (1 mm) of the ROI side.
    ``density`` ([0075]) is None (off), 'grid' (every ``density_cell`` cell is
    crossed by >= ``density_cell_min`` minor lines; may add lines beyond
    ``minor_count[1]``) or 'region' (>= ``density_region_min`` minor lines
    cross ``density_region`` = (x0, y0, x1, y1); replaces lines, count kept).
    Widths are pixels at ``render_size`` (stored divided by it, so they scale
    with any output size); darkness is the crease intensity in [0, 1]
    (spec 3.10: majors bold and deep, minors thin and shallow).
    """

    major_count: Tuple[int, int] = (2, 5)
    minor_count: Tuple[int, int] = (5, 15)
    radius: float = 0.5
    third_side: float = 2.0 / 3.0
    control_in_square: bool = True
    minor_length_rule: RuleMode = "both"
    minor_length_threshold: float = 0.6
    minor_length_min: float = 0.1
    minor_bend: float = 0.25
    minor_thickness_rule: RuleMode = "both"
    minor_thickness_threshold: float = 0.02
    density: Optional[DensityMode] = None
    density_cell: float = 0.2
    density_cell_min: int = 2
    density_region: Tuple[float, float, float, float] = (0.3, 0.3, 0.7, 0.7)
    density_region_min: int = 3
    render_size: int = 128
    major_width_px: Tuple[float, float] = (2.0, 3.5)
    minor_width_px: Tuple[float, float] = (0.8, 1.6)
    major_darkness: Tuple[float, float] = (0.75, 1.0)
    minor_darkness: Tuple[float, float] = (0.35, 0.7)

    def __post_init__(self) -> None:
        lo, hi = self.major_count
        if not 1 <= lo <= hi:
            raise ValueError(f"bad major_count {self.major_count}")
        lo, hi = self.minor_count
        if not 0 <= lo <= hi:
            raise ValueError(f"bad minor_count {self.minor_count}")
        for name in ("minor_length_rule", "minor_thickness_rule"):
            if getattr(self, name) not in ("shortest_major", "threshold", "both"):
                raise ValueError(f"bad {name} {getattr(self, name)!r}")
        if self.density not in (None, "grid", "region"):
            raise ValueError(f"bad density {self.density!r}")
        if not self.minor_width_px[1] < self.major_width_px[0]:
            raise ValueError("minor width range must lie strictly below the major range")
        if not self.minor_darkness[1] <= self.major_darkness[0]:
            raise ValueError("minor darkness range must not exceed the major range")
        if not 0.0 < self.radius <= 1.0:
            raise ValueError("radius must be in (0, 1]")

    @property
    def third_half_side(self) -> float:
        """Half side of the third region (1/3 by default)."""
        return 0.5 * self.third_side


def _ro(a: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    out = np.array(a, dtype=np.float64).reshape(shape)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Candidate:
    """One candidate palm print: line geometry plus stroke attributes (claim 1 (d)).

    ``majors`` (n, 3, 2) and ``minors`` (m, 3, 2) hold (P0, P1, P2) per line
    in y-up unit-square coordinates; widths are in unit-square units and
    darkness in [0, 1].  Arrays are copied and made read-only.
    """

    hand: Hand
    majors: np.ndarray
    major_widths: np.ndarray
    major_darkness: np.ndarray
    minors: np.ndarray
    minor_widths: np.ndarray
    minor_darkness: np.ndarray

    def __post_init__(self) -> None:
        if self.hand not in ("left", "right"):
            raise ValueError(f"bad hand {self.hand!r}")
        n = np.asarray(self.majors).size // 6
        m = np.asarray(self.minors).size // 6
        set_ = object.__setattr__
        set_(self, "majors", _ro(self.majors, (n, 3, 2)))
        set_(self, "minors", _ro(self.minors, (m, 3, 2)))
        set_(self, "major_widths", _ro(self.major_widths, (n,)))
        set_(self, "major_darkness", _ro(self.major_darkness, (n,)))
        set_(self, "minor_widths", _ro(self.minor_widths, (m,)))
        set_(self, "minor_darkness", _ro(self.minor_darkness, (m,)))

    @property
    def n_major(self) -> int:
        return int(self.majors.shape[0])

    @property
    def n_minor(self) -> int:
        return int(self.minors.shape[0])

    def params(self) -> np.ndarray:
        """Flat parameter vector (spec 3.11 recommendation).

        Layout: [hand (0 left, 1 right), n, m, majors (6n), major widths (n),
        major darkness (n), minors (6m), minor widths (m), minor darkness (m)].
        """
        head = np.array([0.0 if self.hand == "left" else 1.0, self.n_major, self.n_minor])
        return np.concatenate(
            [
                head,
                self.majors.ravel(), self.major_widths, self.major_darkness,
                self.minors.ravel(), self.minor_widths, self.minor_darkness,
            ]
        )

    @classmethod
    def from_params(cls, vec) -> "Candidate":
        """Inverse of :meth:`params`."""
        vec = np.asarray(vec, dtype=np.float64)
        hand: Hand = "left" if vec[0] < 0.5 else "right"
        n, m = int(round(vec[1])), int(round(vec[2]))
        sizes = (6 * n, n, n, 6 * m, m, m)
        parts = np.split(vec[3:], np.cumsum(sizes)[:-1])
        return cls(hand, parts[0], parts[1], parts[2], parts[3], parts[4], parts[5])

    def mirrored(self) -> "Candidate":
        """x -> 1 - x mirror with the hand swapped (right hand, spec 3.3)."""
        def flip(a: np.ndarray) -> np.ndarray:
            b = np.array(a)
            b[..., 0] = 1.0 - b[..., 0]
            return b

        return dataclasses.replace(
            self,
            hand="right" if self.hand == "left" else "left",
            majors=flip(self.majors),
            minors=flip(self.minors),
        )

    def all_lines(self) -> np.ndarray:
        """Majors then minors stacked, shape (n + m, 3, 2)."""
        return np.concatenate([self.majors, self.minors], axis=0)


# --------------------------------------------------------------------------
# Rules used by the sampler and by jitter
# --------------------------------------------------------------------------


def minor_length_cap(major_ctrl: np.ndarray, config: CandidateConfig) -> float:
    """Upper bound on minor line length from the length pattern ([0073], spec 3.9)."""
    caps = []
    if config.minor_length_rule in ("shortest_major", "both") and len(major_ctrl):
        caps.append(float(np.min(bezier_arc_length(major_ctrl))))
    if config.minor_length_rule in ("threshold", "both"):
        caps.append(config.minor_length_threshold)
    return min(caps) if caps else math.inf


def minor_width_cap(major_widths: np.ndarray, config: CandidateConfig) -> float:
    """Upper bound on minor stroke width from the thickness pattern ([0074])."""
    caps = []
    if config.minor_thickness_rule in ("shortest_major", "both") and len(major_widths):
        caps.append(float(np.min(major_widths)))
    if config.minor_thickness_rule in ("threshold", "both"):
        caps.append(config.minor_thickness_threshold)
    return min(caps) if caps else math.inf


def density_deficits(minors: np.ndarray, config: CandidateConfig) -> list:
    """Boxes whose minor-line count is below the density pattern ([0075]).

    Returns a list of (box, missing) pairs; empty when satisfied or when the
    density pattern is off.
    """
    if config.density is None:
        return []
    if config.density == "region":
        have = int(lines_crossing_box(minors, config.density_region).sum()) if len(minors) else 0
        miss = config.density_region_min - have
        return [(config.density_region, miss)] if miss > 0 else []
    out = []
    k = int(round(1.0 / config.density_cell))
    cell = 1.0 / k
    for i in range(k):
        for j in range(k):
            box = (i * cell, j * cell, (i + 1) * cell, (j + 1) * cell)
            have = int(lines_crossing_box(minors, box).sum()) if len(minors) else 0
            if have < config.density_cell_min:
                out.append((box, config.density_cell_min - have))
    return out
