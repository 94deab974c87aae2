"""The NIR identity agreement normalised by the enrolled person's own impostor cohort.

The NIR palm patch's agreement rests mostly on the palm's veins; a person whose palm shows few or
faint veins agrees less with *every* hand, their own included (docs/results.md, "The NIR
identity stage's person tail"). Where a person's impostors lie is measured once, at enrolment:
the person's templates against a fixed cohort of other hands' gate patches (the signed
``cohort.file`` of ``sensor_identity`` in ``models/binding_nir.json``, synthetic hands of a
training seed; docs/results.md "The NIR identity agreement normalised by each person's
cohort"), giving the mean and the standard deviation of the best agreement over the person's
templates (:func:`cohort_stats`); each template keeps them (template bytes format 3,
:func:`device.gate.sensor_identity.patch_to_bytes`). The gate then judges

    a' = ref_mean + ref_sd * (a - mean) / sd                      (:func:`normalised`)

against the signed ``cohort.min_agreement`` and, in the lines sum, ``cohort.min_lines_sum``
(:func:`in_force`), so that every person's impostors pass about equally often. Templates
without the pair (enrolled before) are judged as before: the raw agreement against the
signed ``min_agreement`` and ``min_lines_sum``.

Pure functions but :func:`load_cohort` (the signed file, checked against the manifest).
"""
from __future__ import annotations

import io
import math
import struct

import numpy as np

from device.gate.binding_joints import finite_number

MIN_COMPARED = 50
"""Fewest cohort patches that must compare (:func:`cohort_stats`) for a mean and sd to be kept."""

STATS_BYTES = 8
"""Two big-endian float32 (mean, sd) after the hand size in a template of format 3."""


def cohort_numbers(si: dict) -> dict | None:
    """The signed ``cohort`` block of a ``sensor_identity`` block: ``file`` (the cohort's
    patches in the models folder), ``ref_mean`` and ``ref_sd`` (the scale :func:`normalised`
    maps back to), ``min_agreement`` and ``min_lines_sum`` (the limits for a normalised
    score). None when the block has no cohort; ValueError when malformed."""
    c = si.get("cohort")
    if c is None:
        return None
    if not isinstance(c, dict):
        raise ValueError("'sensor_identity' 'cohort' is not an object")
    f = c.get("file")
    if not isinstance(f, str) or not f or "/" in f or "\\" in f or f.startswith("."):
        raise ValueError("'sensor_identity' 'cohort' needs a 'file' in the models folder")
    out = {"file": f}
    for k, lo, hi in (("ref_mean", -1.0, 1.0), ("ref_sd", 0.0, 1.0),
                      ("min_agreement", -1.0, 1.0), ("min_lines_sum", -2.0, 2.0)):
        v = c.get(k)
        if not (finite_number(v) and lo < v < hi):
            raise ValueError(f"'sensor_identity' 'cohort' needs a number '{k}' in ({lo:g}, {hi:g})")
        out[k] = float(v)
    return out


def stats_to_bytes(stats) -> bytes:
    """A (mean, sd) pair as :data:`STATS_BYTES` bytes."""
    m, s = (float(x) for x in stats)
    return struct.pack(">ff", m, s)


def stats_from_bytes(blob: bytes) -> tuple[float, float]:
    """The pair :func:`stats_to_bytes` wrote; ValueError unless a finite mean and an sd > 0."""
    if len(blob) != STATS_BYTES:
        raise ValueError("not a cohort mean and sd")
    m, s = struct.unpack(">ff", bytes(blob))
    if not (math.isfinite(m) and math.isfinite(s) and s > 0):
        raise ValueError("cohort mean and sd not finite, or sd not positive")
    return float(m), float(s)


def cohort_stats(templates: list, cohort: list, agreement,
                 min_compared: int = MIN_COMPARED) -> tuple[float, float] | None:
    """(mean, sd) over the ``cohort`` patches of ``agreement(templates, patch)`` (the gate's
    score: :func:`device.gate.sensor_identity.best_agreement` of a person's palm patches);
    None when fewer than ``min_compared`` compare or the sd is not positive."""
    if not templates:
        return None
    b = np.array([agreement(templates, c) for c in cohort], np.float64)
    b = b[np.isfinite(b)]
    if b.size < max(2, min_compared):
        return None
    m, s = float(b.mean()), float(b.std())
    return (m, s) if s > 0 else None


def user_stats(pairs: list) -> tuple[float, float] | None:
    """The user's (mean, sd): the pair every one of their templates carries (None when any has
    none or they differ -- the user is then judged as before)."""
    if not pairs or any(p is None for p in pairs):
        return None
    first = tuple(pairs[0])
    return first if all(tuple(p) == first for p in pairs) else None


def normalised(agreement: float, stats, c: dict) -> float:
    """``ref_mean + ref_sd * (agreement - mean) / sd`` of the signed cohort numbers ``c`` and
    the user's ``stats`` (mean, sd); NaN stays NaN."""
    m, s = stats
    return float(c["ref_mean"] + c["ref_sd"] * (float(agreement) - m) / s)


def judged(agreement: float, stats, c: dict | None) -> float:
    """The score judged for a person: ``agreement`` :func:`normalised` by their ``stats``
    (mean, sd) under the signed cohort numbers ``c`` where both are given, else
    ``agreement`` itself (templates without the pair, or a signed file without a cohort: the
    raw agreement, as before). The gate's identity stage
    (:meth:`device.gate.sensor_identity_stage.SensorIdentityStage.scored`) and the real-NIR
    measurement (:mod:`device.eval.real_nir_identity`) both judge by it."""
    return agreement if stats is None or c is None else normalised(agreement, stats, c)


def in_force(n: dict, normalised_score: bool) -> dict:
    """The signed numbers ``n`` with the cohort's ``min_agreement`` and ``min_lines_sum`` in
    place of the raw ones when the score is normalised (``n`` itself otherwise)."""
    c = n.get("cohort")
    if not normalised_score or c is None:
        return n
    return dict(n, min_agreement=c["min_agreement"], min_lines_sum=c["min_lines_sum"])


def cohort_to_bytes(patches: list) -> bytes:
    """The cohort's palm patches as an .npz (``lines`` float16 (N, side, side), ``weights``
    uint8 0/1): the signed file."""
    lines = np.stack([np.asarray(p[0], np.float16) for p in patches])
    w = np.stack([(np.asarray(p[1]) > 0).astype(np.uint8) for p in patches])
    buf = io.BytesIO()
    np.savez_compressed(buf, lines=lines, weights=w)
    return buf.getvalue()


def cohort_from_bytes(data: bytes) -> list:
    """The palm patches of :func:`cohort_to_bytes`' bytes; ValueError when malformed."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        lines, w = z["lines"], z["weights"]
    if lines.ndim != 3 or lines.shape != w.shape or lines.shape[1] != lines.shape[2] \
            or not np.all(np.isfinite(lines)):
        raise ValueError("identity cohort: (N, side, side) finite lines and weights needed")
    return [(lines[i].astype(np.float32), w[i].astype(np.float32)) for i in range(len(lines))]


def load_cohort(name: str, models_dir=None) -> list:
    """The signed cohort ``name`` of the models folder (checked against the manifest's sha256
    and signature on the bytes read: :func:`device.models.model.verified_bytes`)."""
    from device.models.model import DEFAULT_MODELS_DIR, verified_bytes
    data, _ = verified_bytes(name, models_dir or DEFAULT_MODELS_DIR)
    return cohort_from_bytes(data)
