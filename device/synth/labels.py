"""Candidate image labels / synthetic identities (seed 004, spec 3.11).

Two labelling rules of the patent:

* **Strict rule** ([0094]): any difference in the position or length of any
  major or minor line gives a different label -> :func:`strict_label`, a
  deterministic hash of the full parameter vector rounded to 1e-9.
* **Tolerance rule** ([0095]): a major and a minor *distribution change
  range* are preset; a new label is issued only when the layout change goes
  beyond the range -> :class:`ToleranceLabeler` / :func:`within_tolerance`.
  The change of a line set is the largest absolute coordinate difference
  between corresponding points (lines matched by index).
"""

from __future__ import annotations

import hashlib
from typing import Dict, List, Literal, Tuple

import numpy as np

from device.synth.bezier import Candidate

ToleranceRule = Literal["both", "major", "minor", "either"]
_RULES = ("both", "major", "minor", "either")
_TOL_EPS = 1e-12


def strict_label(cand: Candidate) -> str:
    """Deterministic strict-rule label ([0094], checks 16-17).

    sha256 (hex) of the parameter vector (:meth:`Candidate.params`: hand,
    counts, every P0/P1/P2, widths, darkness) quantised to integer multiples
    of 1e-9, so any change above 1e-9 to any line changes the label.
    """
    q = np.rint(np.asarray(cand.params(), dtype=np.float64) * 1e9).astype("<i8")
    h = hashlib.sha256(b"palmgate-seed004-candidate-v1\0")
    h.update(q.tobytes())
    return h.hexdigest()


def max_point_change(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |coordinate difference| between corresponding points (inf if shapes differ)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)))


def within_tolerance(
    a: Candidate,
    b: Candidate,
    major_range: float,
    minor_range: float,
    rule: ToleranceRule = "both",
) -> bool:
    """True when ``a`` keeps the label of ``b`` under the tolerance rule ([0095]).

    Hands must match.  A line set is "within" when the line counts match and
    every corresponding point moved by at most its range.  ``rule`` says what
    must stay within range for the label to be kept; the complementary event
    is the [0095] variant that issues a new label:

    * 'both'   - majors and minors within (new label if either goes beyond);
    * 'major'  - majors within (new label if the majors go beyond);
    * 'minor'  - minors within (new label if the minors go beyond);
    * 'either' - majors or minors within (new label only if both go beyond).
    """
    if rule not in _RULES:
        raise ValueError(f"bad rule {rule!r}")
    if a.hand != b.hand:
        return False
    major_in = max_point_change(a.majors, b.majors) <= major_range + _TOL_EPS
    minor_in = max_point_change(a.minors, b.minors) <= minor_range + _TOL_EPS
    if rule == "both":
        return major_in and minor_in
    if rule == "major":
        return major_in
    if rule == "minor":
        return minor_in
    return major_in or minor_in


def _rule_distance(a: Candidate, b: Candidate, rule: ToleranceRule) -> float:
    """Change between two candidates as seen by ``rule`` (for nearest-base ties)."""
    d_major = max_point_change(a.majors, b.majors)
    d_minor = max_point_change(a.minors, b.minors)
    if rule == "both":
        return max(d_major, d_minor)
    if rule == "major":
        return d_major
    if rule == "minor":
        return d_minor
    return min(d_major, d_minor)


class ToleranceLabeler:
    """Registry of base candidates assigning tolerance-rule integer ids ([0095]).

    :meth:`assign` returns the id of the registered base candidate closest to
    ``cand`` (smallest max point change, ties -> lowest id) among those it is
    :func:`within_tolerance` of; otherwise it registers ``cand`` as a new
    base and returns a fresh id (0, 1, 2, ...).  Deterministic for a given
    assignment order.
    """

    def __init__(
        self, major_range: float, minor_range: float, rule: ToleranceRule = "both"
    ) -> None:
        if rule not in _RULES:
            raise ValueError(f"bad rule {rule!r}")
        if major_range < 0 or minor_range < 0:
            raise ValueError("change ranges must be non-negative")
        self.major_range = float(major_range)
        self.minor_range = float(minor_range)
        self.rule: ToleranceRule = rule
        self._bases: List[Candidate] = []
        self._by_hand: Dict[str, List[int]] = {"left": [], "right": []}

    def __len__(self) -> int:
        return len(self._bases)

    def base(self, label: int) -> Candidate:
        """The base candidate registered under ``label``."""
        return self._bases[label]

    def match(self, cand: Candidate) -> int:
        """Id of the matching base candidate, or -1 if none (registers nothing)."""
        best: Tuple[float, int] = (float("inf"), -1)
        for idx in self._by_hand[cand.hand]:
            base = self._bases[idx]
            if not within_tolerance(cand, base, self.major_range, self.minor_range, self.rule):
                continue
            dist = _rule_distance(cand, base, self.rule)
            if dist < best[0]:
                best = (dist, idx)
        return best[1]

    def assign(self, cand: Candidate) -> int:
        """Tolerance-rule label of ``cand`` (registers it as a new base if unmatched)."""
        found = self.match(cand)
        if found >= 0:
            return found
        self._bases.append(cand)
        new_id = len(self._bases) - 1
        self._by_hand[cand.hand].append(new_id)
        return new_id
