"""X-ray binding: the size-and-directions term released once the identity checks tie both halves.

The X-ray binding score (:func:`device.gate.sensor_binding.binding_score`) holds a term that
compares the size of the hand and its fingers' directions in the sensor frame's bones with the
views' landmarks (:func:`device.gate.binding_size.size_term`). After the match, the identity
stage (:mod:`device.gate.sensor_identity_stage`) ties each half to the identified person on its
own: the bone patch ties the sensor frame's bones to the person's enrolled bones, the hand size
ties the views' hand to the person's enrolled size (and 1:N the views' palm to the person). When
both pass, the two halves are already tied to one hand, and the term's direct comparison of them
adds nothing but denials of live hands (validation X-ray 9317: 7 of 1,000 bona fide denied only
by it, no attack that would open without it; docs/results.md, "The binding's size term once the
identity checks tie both halves").

So a presentation whose binding score fails the signed ``max_score`` only because of that term
(the score without it passes) is not denied at the binding: the binding raises
:class:`SizeTermDeny` (a :class:`~device.gate.decision.Deny` ``sensor_mismatch``, so whoever
does not hold it back -- enrolment, split mode, a gate without the identity stage -- denies as
before), and the gate (:meth:`device.gate.pipeline.Pipeline.decide`) holds it back until the
identity stage has run. It is released (:func:`released`) when, and only when, the identity
stage checked the bone patch and the hand size of the identified user and both passed
(``Decision.hand_size == "checked"``); in every other case the presentation is denied with the
held-back ``sensor_mismatch``, whatever else denied it after the binding (as if the binding had
denied it first). No threshold changes; NIR's binding has no such term.

The same holds back a presentation whose whole score is over ``max_score`` but within the signed
``max_score_identified`` of ``models/binding_xray.json`` (:class:`IdentifiedDeny`, branch
xrel): a presentation whose sensor bones are the identified person's and whose views' hand is
that person's size is tied at both ends, so the binding's limit is then the wider one. It is
released by the same verdict (``Decision.binding_identified = "released"``, audited). Without
that number (a file from before it, NIR, a configured stricter ``binding_max_distance``)
nothing is held this way. The shipped X-ray file signs 45.0 (branch xrel45): at least 10 mm
under the nearest attack measured that passes every other check (development 8839's
``mixed_replica_views`` of variant offset, 56.7); xrel's 70.0 was measured and not shipped,
since on development data it opened attacks the binding alone stops (docs/results.md "X-ray
live hands just over the binding's limit: a smaller max_score_identified").
"""
from __future__ import annotations

import math

from device.gate.decision import Deny

RELEASED = "released"
"""``Decision.binding_size_term`` / ``binding_identified`` (audited) of a presentation opened
because the identity checks released the term / the wider limit."""


class SizeTermDeny(Deny):
    """The binding's ``sensor_mismatch`` of a presentation that passes without the size term;
    ``probes``: the binding's :class:`~device.gate.sensor_binding.HandProbes` (the identity
    stage places its patch with them), ``without``: the score without the term."""

    def __init__(self, reason: str, prompt: str, detail: str, probes=None,
                 without: float | None = None):
        super().__init__(reason, prompt, detail)
        self.probes, self.without = probes, without


class IdentifiedDeny(SizeTermDeny):
    """The binding's ``sensor_mismatch`` of a presentation whose whole score is within the
    signed ``max_score_identified`` (:func:`within_identified`): held back and released
    exactly as a :class:`SizeTermDeny`, audited as ``binding_identified``."""


def within_identified(score: float, max_score: float, max_identified: float | None) -> bool:
    """Whether a binding ``score`` over ``max_score`` is within ``max_identified`` (pure):
    never without that limit, for a score that passes anyway, or one not finite."""
    if max_identified is None or not (math.isfinite(score) and math.isfinite(max_identified)):
        return False
    return max_score < score <= max_identified


def size_term_of(m, stats: dict | None) -> float | None:
    """The size-and-directions term of the binding score of probes ``m`` (X-ray, statistics
    with ``joints``); None where the score has no such term (NIR, no bones, no numbers)."""
    if m is None or not stats or not stats.get("joints") or getattr(m, "bones", None) is None:
        return None
    from device.gate.binding_size import size_term
    return float(size_term(m.bones, m.landmarks, m.px_mm, stats["joints"]))


def fails_only_by(score: float, term: float | None, max_score: float) -> bool:
    """Whether a binding ``score`` over ``max_score`` passes without the size ``term``
    (pure): never for a score that passes, a term not measured or not finite, or a score
    without it that is not finite."""
    if term is None or not math.isfinite(term):
        return False
    if score <= max_score:
        return False
    rest = score - term
    return rest == rest and rest <= max_score


def mismatch(b, stats: dict | None, max_score: float, min_texture=None,
             max_identified: float | None = None) -> Deny:
    """The binding's ``sensor_mismatch`` of a binding ``b`` whose score is over ``max_score``:
    a :class:`SizeTermDeny` where the size term alone fails it, else an
    :class:`IdentifiedDeny` where the score is within ``max_identified`` (both only where no
    palm-line check follows, ``min_texture`` None), a plain :class:`Deny` otherwise."""
    why = "the sensor frame's hand is not the views' hand"
    prompt = "please present your palm again"
    term = size_term_of(b.probes, stats) if min_texture is None else None
    if fails_only_by(b.score, term, max_score):
        return SizeTermDeny("sensor_mismatch", prompt, why, b.probes, b.score - term)
    if min_texture is None and within_identified(b.score, max_score, max_identified):
        return IdentifiedDeny("sensor_mismatch", prompt, why, b.probes)
    return Deny("sensor_mismatch", prompt, why)


def released(pending: Deny | None, out) -> bool:
    """Whether the held-back ``pending`` :class:`SizeTermDeny` is released by the identity
    stage's verdict on ``out``: only when it checked the bone patch and the hand size of the
    identified user and both passed."""
    return isinstance(pending, SizeTermDeny) and bool(getattr(out, "user_id", None)) \
        and getattr(out, "sensor_identity", None) == "checked" \
        and getattr(out, "hand_size", None) == "checked"
