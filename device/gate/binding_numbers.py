"""The sensor binding's security numbers, carried by the signed manifest like a model's.

Per sensor one data file ``models/binding_<sensor>.json`` (listed in models/manifest.json with
its sha256, so covered by the release signature like every model file and threshold):

* ``max_score`` -- the binding threshold (mm): a presentation whose binding score is above it
  is denied ``sensor_mismatch`` (:mod:`device.gate.sensor_binding`); the manifest entry carries
  the same value as its ``threshold`` and the two must agree;
* ``probe_ranges`` -- the live hands' range at each binding probe (``lo``, ``hi``, ``clip``,
  ``q``, ``n``, the seed(s) and the command that fitted them; X-ray also ``finger_cap`` and
  the bones' ``joints``, with the size and finger directions' numbers: all of them or none,
  :func:`device.gate.binding_size.size_numbers_problem`; and the marrow's two, both or
  neither, :func:`device.gate.binding_marrow.marrow_numbers_problem`), what
  :func:`device.gate.sensor_binding.binding_score` takes as ``stats``;
* ``palm_lines`` (NIR, optional) -- the palm-line check's numbers
  (:mod:`device.gate.binding_texture`): ``min_agreement`` (below it the presentation is
  denied) and ``max_score``, the outline's threshold chosen with it (used instead of the
  top-level one while the palm lines are checked), with the command and rule that chose them.
  Where the signed file carries them the check is on (a real NIR camera sees the palm's
  lines); where it does not, it is off;
* ``max_score_identified`` (optional, X-ray) -- the binding's wider limit for a presentation
  whose identity checks (the bone patch and the hand size) both pass
  (:mod:`device.gate.binding_release`); a number at least ``max_score``; the shipped X-ray
  file signs 45.0 (branch xrel45; xrel's 70.0 was measured and not shipped);
* ``sensor_identity`` (NIR and X-ray, optional) -- the sensor frame against the identified
  person's sensor templates (:mod:`device.gate.sensor_identity`): ``min_agreement`` and the
  comparison's settings, with the command and data that chose them (``feature``, where given,
  must be the sensor's template kind, :data:`device.store.sensor_templates.SENSOR_KIND`: a
  threshold chosen for the other sensor's feature is refused; X-ray's ``refine_deg``, the bone
  patch comparison's turn refinement, absent in older files: the code's
  :data:`~device.gate.xray_bone_patch.REFINE_DEG`); without it the gate's
  identity stage cannot compare (:mod:`device.gate.sensor_identity_stage`);
* any further per-sensor numbers a version of the score needs (a dict: keys this code does not
  know are kept and handed over in :attr:`BindingNumbers.doc`).

``python -m device.eval.binding_eval --write-stats`` (the ranges) and ``--write-threshold``
(the threshold) write the file and its manifest entry (:mod:`device.eval.binding_release`);
the release step re-signs the manifest (docs/model-signing.md). A missing, unlisted, tampered
or unsigned file, or one whose numbers are malformed, is a :class:`ModelError`: the gate's
binding stage then denies every presentation (``liveness_unavailable``, fail secure).

A configured ``[liveness] binding_max_distance`` may only make the check stricter (a lower
threshold, :func:`stricter_max_score`), and so may ``[liveness] binding_min_palm_lines`` (a
higher least agreement, :func:`stricter_min_agreement`; with no signed palm-line numbers it
turns the check on at that value); a looser one takes a newly signed file
(:func:`in_force`).
"""
from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from device.gate.binding_joints import bone_numbers_problem
from device.gate.binding_joints import finite_number as _number
from device.gate.binding_marrow import MARROW_KEYS, marrow_numbers_problem
from device.gate.binding_size import SIZE_KEYS, size_numbers_problem
from device.gate.sensor_identity import IDENTITY_SENSORS, identity_numbers
from device.store.sensor_templates import SENSOR_KIND
from device.models.model import DEFAULT_MODELS_DIR, ModelError, verified_bytes

log = logging.getLogger("palmgate.gate")

FORMAT = 1
SENSORS = ("xray", "nir")
PALM_LINE_SENSORS = ("nir",)
"""The sensors whose frame shows the palm's surface lines (an NIR camera does; X-ray does not)."""


def numbers_file(sensor: str) -> str:
    """The binding numbers' file name of a sensor kind."""
    if sensor not in SENSORS:
        raise ValueError(f"sensor must be one of {SENSORS}, not {sensor!r}")
    return f"binding_{sensor}.json"


@dataclass
class BindingNumbers:
    """The verified numbers of one sensor: ``max_score`` (the threshold), ``stats`` (the
    probe ranges), ``doc`` (the whole file, for numbers this module does not name) and the
    manifest ``entry``."""

    sensor: str
    max_score: float
    stats: dict
    doc: dict = field(default_factory=dict)
    entry: dict = field(default_factory=dict)
    palm_lines: dict | None = None
    """NIR: ``{"min_agreement", "max_score", ...}`` of the palm-line check, or None (off)."""
    max_score_identified: float | None = None
    """The wider limit once both identity checks pass, or None (none signed)."""


def parse_numbers(doc, sensor: str, name: str, entry: dict | None = None) -> BindingNumbers:
    """The numbers of a parsed file, checked: a :class:`ModelError` naming what is wrong."""
    if not isinstance(doc, dict):
        raise ModelError(f"{name}: not a JSON object")
    if doc.get("format") != FORMAT:
        raise ModelError(f"{name}: format {doc.get('format')!r}, this build reads {FORMAT}")
    if doc.get("sensor") != sensor:
        raise ModelError(f"{name}: numbers of sensor {doc.get('sensor')!r}, not {sensor!r}")
    t = doc.get("max_score")
    if not _number(t) or not t > 0:
        raise ModelError(f"{name}: no positive numeric 'max_score' (the binding threshold)")
    st = doc.get("probe_ranges")
    if not isinstance(st, dict) or not isinstance(st.get("lo"), list) \
            or not isinstance(st.get("hi"), list) or len(st["lo"]) != len(st["hi"]) \
            or not st["lo"] or not _number(st.get("clip")):
        raise ModelError(f"{name}: 'probe_ranges' needs lists 'lo' and 'hi' of one length "
                         f"and a numeric 'clip'")
    if not all(v is None or _number(v) for v in st["lo"] + st["hi"]):
        raise ModelError(f"{name}: a probe range bound is neither a number nor null")
    fc = st.get("finger_cap")
    if fc is not None and not (_number(fc) and fc > 0):
        raise ModelError(f"{name}: 'probe_ranges' 'finger_cap' is not a positive number")
    jn = st.get("joints")
    if jn is not None:                     # X-ray: the bones' and the size term's numbers
        bad = (bone_numbers_problem(jn) or size_numbers_problem(jn)
               or marrow_numbers_problem(jn))
        if bad:
            raise ModelError(f"{name}: 'probe_ranges' 'joints': {bad}")
    if sensor == "xray":                   # a file from before a term: read, and said so
        off = (["bones", "size and finger directions", "marrow"] if jn is None else
               [t for t, keys in (("size and finger directions", SIZE_KEYS),
                                  ("marrow", MARROW_KEYS)) if not any(k in jn for k in keys)])
        if off:
            log.warning("%s: no numbers of the X-ray binding's %s term(s) (a file from before "
                        "them, or a models folder rolled back): those terms are off",
                        name, ", ".join(off))
    mi = doc.get("max_score_identified")
    if mi is not None and not (_number(mi) and mi >= t):
        raise ModelError(f"{name}: 'max_score_identified' is not a finite number at least "
                         f"'max_score' ({t})")
    pl = doc.get("palm_lines")
    if pl is not None:
        if not isinstance(pl, dict) or not _number(pl.get("min_agreement")) \
                or not _number(pl.get("max_score")) or not pl["max_score"] > 0:
            raise ModelError(f"{name}: 'palm_lines' needs a numeric 'min_agreement' and a "
                             f"positive numeric 'max_score'")
        if sensor not in PALM_LINE_SENSORS:
            raise ModelError(f"{name}: palm-line numbers for sensor {sensor!r}, which has "
                             f"no palm-line check")
    try:
        si = identity_numbers(doc)
    except ValueError as e:
        raise ModelError(f"{name}: {e}") from None
    if si is not None and sensor not in IDENTITY_SENSORS:
        raise ModelError(f"{name}: sensor_identity numbers for sensor {sensor!r}, which has no "
                         f"identity feature")
    if si is not None and si["refine_deg"] is not None and sensor != "xray":
        raise ModelError(f"{name}: sensor_identity 'refine_deg' for sensor {sensor!r}: the turn "
                         f"refinement is the X-ray bone patch's comparison's only")
    feature = (doc.get("sensor_identity") or {}).get("feature") if si is not None else None
    if feature is not None and feature != SENSOR_KIND.get(sensor):
        raise ModelError(f"{name}: sensor_identity numbers of feature {feature!r}, not the "
                         f"{sensor} sensor's {SENSOR_KIND.get(sensor)!r}")
    if entry is not None:
        et = entry.get("threshold")
        if not _number(et) or float(et) != float(t):
            raise ModelError(f"{name}: its max_score {t} differs from the manifest entry's "
                             f"threshold {et!r}")
    return BindingNumbers(sensor, float(t), st, doc, dict(entry or {}), pl,
                          None if mi is None else float(mi))


def load_binding_numbers(sensor: str, models_dir: Path | str | None = None,
                         trusted_keys=None) -> BindingNumbers:
    """The binding numbers of ``sensor`` from ``models_dir`` (default the shipped models),
    after checking the manifest's signature and the file's sha256 on the very bytes parsed."""
    name = numbers_file(sensor)
    data, entry = verified_bytes(name, models_dir or DEFAULT_MODELS_DIR, trusted_keys)
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{name}: not valid JSON: {e}") from None
    return parse_numbers(doc, sensor, name, entry)


@functools.lru_cache(maxsize=8)
def shipped_stats(sensor: str, models_dir: str | None = None) -> dict:
    """The verified probe ranges of ``sensor`` (cached: for evaluations that score thousands
    of presentations; the gate's stage loads its own at start)."""
    return load_binding_numbers(sensor, models_dir).stats


def stricter_max_score(configured: float, signed: float, name: str) -> float:
    """``configured`` when it is at most the signed threshold (a stricter binding check); a
    :class:`ModelError` when it would loosen it (or is not a number >= 0)."""
    t = float(configured)
    if not 0.0 <= t <= signed:              # NaN fails too
        raise ModelError(f"[liveness] binding_max_distance {t:g} is above the signed binding "
                         f"threshold {signed:g} of {name}: a configured value can only make "
                         f"the check stricter; a looser one takes a newly signed file "
                         f"(docs/sensor-branch.md, Binding)")
    return t


def stricter_min_agreement(configured: float, signed: float | None, name: str) -> float:
    """``configured`` when it is at least the signed least palm-line agreement (a stricter
    check; with no signed one, any value turns the check on); a :class:`ModelError` when it
    would loosen it (or is not a number)."""
    t = float(configured)
    if not math.isfinite(t):
        raise ModelError(f"[liveness] binding_min_palm_lines {t:g} is not a finite number")
    if signed is not None and not t >= signed:
        raise ModelError(f"[liveness] binding_min_palm_lines {t:g} is below the signed least "
                         f"palm-line agreement {signed:g} of {name}: a configured value can "
                         f"only make the check stricter; a looser one takes a newly signed "
                         f"file (docs/sensor-branch.md, Binding)")
    return t


@dataclass(frozen=True)
class InForce:
    """The thresholds the gate decides with: ``max_score`` (the outline's), ``min_agreement``
    (the palm lines'; None: not checked) and ``from_config`` (a configured value tightened
    one)."""

    max_score: float
    min_agreement: float | None
    from_config: bool = False
    max_score_identified: float | None = None
    """The wider limit once both identity checks pass (:mod:`device.gate.binding_release`);
    None where none is signed or a configured ``binding_max_distance`` tightens the check (a
    site that asks a stricter binding gets no wider one)."""


def in_force(n: BindingNumbers, max_distance: float | None = None,
             min_palm_lines: float | None = None) -> InForce:
    """The thresholds in force from the signed numbers ``n`` and the configuration's
    ``[liveness] binding_max_distance`` / ``binding_min_palm_lines`` (each may only tighten;
    :class:`ModelError` otherwise). With signed palm-line numbers the check is on and the
    outline's threshold is the one chosen with it; a configured least agreement turns it on
    where the file has none (the outline's top-level threshold then)."""
    name = numbers_file(n.sensor)
    pl = n.palm_lines
    signed_max = float(pl["max_score"]) if pl else n.max_score
    signed_min = float(pl["min_agreement"]) if pl else None
    mx = signed_max if max_distance is None else \
        stricter_max_score(max_distance, signed_max, name)
    mn = signed_min
    if min_palm_lines is not None:
        if n.sensor not in PALM_LINE_SENSORS:
            raise ModelError(f"[liveness] binding_min_palm_lines is set, but the {n.sensor} "
                             f"sensor has no palm-line check")
        mn = stricter_min_agreement(min_palm_lines, signed_min, name)
    mi = n.max_score_identified if max_distance is None and not pl else None
    return InForce(mx, mn, max_distance is not None or min_palm_lines is not None, mi)
