"""Acceptance checks 16-19 of spec seed-004 section 6 for device/synth/labels.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from device.synth.bezier import Candidate, jitter_candidate, sample_candidate
from device.synth.labels import (
    ToleranceLabeler,
    max_point_change,
    strict_label,
    within_tolerance,
)

R_MAJOR, R_MINOR = 0.02, 0.01


@pytest.fixture(scope="module")
def cands():
    rng = np.random.default_rng(2023)
    return [sample_candidate(rng, "left" if i % 2 else "right") for i in range(2000)]


def _moved(c: Candidate, part: str, line: int, point: int, axis: int, delta: float) -> Candidate:
    arr = np.array(getattr(c, part))
    arr[line, point, axis] += delta
    return dataclasses.replace(c, **{part: arr})


# ---------------------------------------------------------------- check 16


def test_strict_label_deterministic(cands):
    c = cands[0]
    assert strict_label(c) == strict_label(c)
    assert strict_label(Candidate.from_params(c.params())) == strict_label(c)
    again = sample_candidate(np.random.default_rng(2023), "right")
    assert strict_label(again) == strict_label(cands[0])
    lab = strict_label(c)
    assert isinstance(lab, str) and len(lab) == 64 and int(lab, 16) >= 0
    # rounding to 1e-9: sub-1e-9 noise keeps the label
    assert strict_label(_moved(c, "majors", 0, 0, 0, 1e-12)) == lab


# ---------------------------------------------------------------- check 17


def test_strict_label_changes_on_any_point(cands):
    c = cands[1]
    base = strict_label(c)
    seen = {base}
    for part, n in (("majors", c.n_major), ("minors", c.n_minor)):
        for line in range(n):
            for point in range(3):
                for axis in range(2):
                    lab = strict_label(_moved(c, part, line, point, axis, 1e-6))
                    assert lab != base
                    seen.add(lab)
    assert len(seen) == 1 + 6 * (c.n_major + c.n_minor)


def test_strict_label_changes_on_length_and_mirror(cands):
    c = cands[2]
    minors = np.array(c.minors)
    minors[0, 2] = minors[0, 0] + 0.999 * (minors[0, 2] - minors[0, 0])  # shorter line
    assert strict_label(dataclasses.replace(c, minors=minors)) != strict_label(c)
    assert strict_label(c.mirrored()) != strict_label(c)
    assert strict_label(dataclasses.replace(c, minors=c.minors[:-1], minor_widths=c.minor_widths[:-1],
                                            minor_darkness=c.minor_darkness[:-1])) != strict_label(c)


def test_strict_labels_unique_over_draws(cands):
    labels = [strict_label(c) for c in cands]
    assert len(set(labels)) == len(labels)


# ---------------------------------------------------------------- check 18


def test_tolerance_jitter_keeps_label_bigger_change_new(cands):
    rng = np.random.default_rng(1)
    lab = ToleranceLabeler(R_MAJOR, R_MINOR)
    bases = cands[:300]
    ids = [lab.assign(c) for c in bases]
    assert ids == list(range(len(bases)))
    for i, c in enumerate(bases):
        for _ in range(3):
            j = jitter_candidate(c, rng, R_MAJOR, R_MINOR)
            assert lab.assign(j) == i
    assert len(lab) == len(bases)
    # a bigger change on any single point gives a new id
    new_ids = set()
    for i, c in enumerate(bases[:50]):
        part = "majors" if i % 2 else "minors"
        rng_ = R_MAJOR if part == "majors" else R_MINOR
        new_ids.add(lab.assign(_moved(c, part, 0, i % 3, i % 2, 1.5 * rng_)))
    assert min(new_ids) >= len(bases) and len(new_ids) == 50
    # bigger jitter: new id exactly when some point moved beyond its range
    for c in bases[50:150]:
        j = jitter_candidate(c, rng, 5 * R_MAJOR, 5 * R_MINOR)
        beyond = (max_point_change(j.majors, c.majors) > R_MAJOR
                  or max_point_change(j.minors, c.minors) > R_MINOR)
        before = len(lab)
        got = lab.assign(j)
        assert (got >= before) == beyond


def test_tolerance_requires_same_hand_and_counts(cands):
    c = cands[3]
    lab = ToleranceLabeler(R_MAJOR, R_MINOR)
    assert lab.assign(c) == 0
    assert lab.assign(c.mirrored()) == 1
    fewer = dataclasses.replace(c, majors=c.majors[:-1], major_widths=c.major_widths[:-1],
                                major_darkness=c.major_darkness[:-1])
    assert lab.assign(fewer) == 2
    assert lab.assign(c) == 0 and lab.base(0) is c


@pytest.mark.parametrize(
    "rule, major_big, minor_big, same",
    [
        ("both", False, False, True), ("both", True, False, False),
        ("both", False, True, False), ("both", True, True, False),
        ("major", False, True, True), ("major", True, False, False),
        ("minor", True, False, True), ("minor", False, True, False),
        ("either", True, False, True), ("either", False, True, True),
        ("either", True, True, False), ("either", False, False, True),
    ],
)
def test_tolerance_rule_variants(cands, rule, major_big, minor_big, same):
    c = cands[4]
    d = _moved(c, "majors", 1, 1, 0, (3.0 if major_big else 0.5) * R_MAJOR)
    d = _moved(d, "minors", 2, 0, 1, (3.0 if minor_big else 0.5) * R_MINOR)
    assert within_tolerance(d, c, R_MAJOR, R_MINOR, rule) is same
    lab = ToleranceLabeler(R_MAJOR, R_MINOR, rule=rule)
    lab.assign(c)
    assert (lab.assign(d) == 0) is same


def test_tolerance_picks_nearest_base(cands):
    c = cands[5]
    lab = ToleranceLabeler(R_MAJOR, R_MINOR)
    assert lab.assign(c) == 0
    assert lab.assign(_moved(c, "majors", 0, 1, 0, 0.03)) == 1  # beyond base 0
    assert lab.assign(_moved(c, "majors", 0, 1, 0, 0.012)) == 0  # within both, nearer 0
    assert lab.assign(_moved(c, "majors", 0, 1, 0, 0.019)) == 1  # within both, nearer 1
    assert lab.match(_moved(c, "majors", 0, 1, 0, 0.06)) == -1
    assert len(lab) == 2


def test_tolerance_bad_args():
    with pytest.raises(ValueError):
        ToleranceLabeler(0.1, 0.1, rule="sometimes")
    with pytest.raises(ValueError):
        ToleranceLabeler(-0.1, 0.1)


# ---------------------------------------------------------------- check 19


def test_every_candidate_carries_labels(cands):
    lab = ToleranceLabeler(R_MAJOR, R_MINOR)
    rng = np.random.default_rng(8)
    for c in cands[:200]:
        sid = lab.assign(c)
        # samples of one identity (jittered) inherit the base's labels
        j = jitter_candidate(c, rng, R_MAJOR, R_MINOR)
        assert lab.assign(j) == sid
        assert isinstance(strict_label(c), str) and sid >= 0
