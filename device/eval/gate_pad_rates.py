"""ISO/IEC 30107-3 rates of the gate's own decisions (``palmgate evaluate-liveness --enrol``):
pure functions of the decisions' rows.

A row is one presentation decided by :meth:`device.gate.pipeline.Pipeline.decide` with 1:N
identification: ``live`` (bona fide or attack), ``person`` (the enrolled person the
presentation is of: for an attack, its victim, the person the views show), ``decision``
(``open``/``deny``), ``reason`` and ``user_id`` (whom the gate identified).

- **FTA** (failure to acquire): the gate denied for a view-quality reason (``quality:*``,
  e.g. ``quality:motion_blur``) -- the quality and palm-region stages come before any PAD
  decision in the gate's order, so no PAD decision was made. Counted and rated per class.
- **APCER** (attacks): share of the species' presentations the gate would *open* for (identified
  as the victim or as anyone, every check passed). ``apcer`` is over *all* the species'
  presentations (an FTA did not open), ``apcer_acquired`` over those not FTA.
- **BPCER** (bona fide): share of bona fide presentations that do *not* open as their own
  person (denied for any reason, or opened as somebody else). ``bpcer_all`` is over *all*
  bona fide presentations (every FTA is an error), ``bpcer_acquired`` over those not FTA.
- **Why a bona fide presentation did not open** (``not_opened_by``): ``fta``; ``pad`` -- a
  presentation-attack check refused it (the sensor stage, the binding, the identity checks:
  :func:`pad_check_reason`); ``recognition`` -- 1:N found nobody (``no_match``) or opened it as
  somebody else; ``other`` -- the rest (timeouts and errors of the feature or match, access
  times). ``bpcer_pad`` = ``pad`` over the acquired presentations: the error ISO/IEC 30107-3
  calls the PAD subsystem's BPCER, beside the gate's whole ``bpcer_all``.

The *stage score* keeps the columns of the mode without enrolment: p(live) when the sensor
chain (presence -> SR -> liveness -> binding) and every stage before it passed, whatever a
later stage (feature, match, identity, access times) decided; :data:`DENIED` otherwise.
"""
from __future__ import annotations

FTA_PREFIX = "quality:"
DENIED = -1.0
PAD_STAGES = ("quality", "calibration", "regions", "sensor", "binding")
"""The stages up to the PAD decision, in the gate's order (device.gate.pipeline.STAGES)."""
PAD_REASONS = frozenset({"corrupt_frame", "no_hand_in_sensor", "not_live", "sensor_mismatch",
                         "liveness_unavailable"})
"""Deny reasons of those stages that name no stage."""


def is_fta(reason) -> bool:
    """A failure to acquire: a view-quality deny (``quality:*``)."""
    return isinstance(reason, str) and reason.startswith(FTA_PREFIX)


def pad_reason(reason):
    """``reason`` when a stage up to the PAD decision (quality, calibration, regions, sensor,
    binding) gave it, else None (it passed them; a later stage decided)."""
    if not reason or reason == "match":
        return None
    if is_fta(reason) or reason in PAD_REASONS:
        return reason
    kind, _, stage = reason.partition(":")
    if kind in ("error", "timeout") and stage in PAD_STAGES:
        return reason
    return None


IDENTITY_REASONS = frozenset({"sensor_identity", "error:identity", "timeout:identity"})
"""Deny reasons of the identity checks after the match (device.gate.sensor_identity_stage)."""


def pad_check_reason(reason) -> bool:
    """A presentation-attack check denied: a stage up to the PAD decision other than a view's
    quality (an FTA), or the identity checks after the match."""
    r = pad_reason(reason)
    return (r is not None and not is_fta(r)) or reason in IDENTITY_REASONS


def stage_score(p_live, reason, p_phantom=None) -> float:
    """p(live) when liveness ran and no stage up to the PAD decision denied other than
    liveness, else :data:`DENIED` (the mode without enrolment's stage score; the X-ray phantom
    check's ``not_live`` -- ``p_phantom`` known -- is DENIED too)."""
    from device.models.sensor_branch import phantom_denied
    r = pad_reason(reason)
    if p_live is None or r not in (None, "not_live") or phantom_denied(p_phantom, reason):
        return DENIED
    return float(p_live)


def rate(k: int, n: int) -> dict:
    return {"k": int(k), "n": int(n), "rate": round(k / n, 6) if n else None}


def opened_as_own(row) -> bool:
    return row["decision"] == "open" and row["user_id"] == row["expected_user"]


def class_rates(rows, live: bool) -> dict:
    """The gate's rates of one class: FTA, and APCER (attacks) or BPCER (bona fide), each
    over all presentations and over the acquired ones."""
    n = len(rows)
    fta = sum(is_fta(r["reason"]) for r in rows)
    opened = [r for r in rows if r["decision"] == "open"]
    own = sum(opened_as_own(r) for r in opened)
    out = {"n": n, "fta": rate(fta, n), "acquired": n - fta,
           "opened": len(opened), "opened_as_own": own, "opened_as_other": len(opened) - own,
           # 1:N found the person (the victim of an attack), whatever a later check decided
           "identified_as_own": sum(r["user_id"] is not None and
                                    r["user_id"] == r["expected_user"] for r in rows)}
    if live:
        err = n - own                    # every FTA is among them: it did not open
        out["bpcer_all"] = rate(err, n)
        out["bpcer_acquired"] = rate(err - fta, n - fta)
        why = {"fta": fta, "pad": 0, "recognition": 0, "other": 0}
        for r in rows:
            if opened_as_own(r) or is_fta(r["reason"]):
                continue
            if r["decision"] == "open" or r["reason"] == "no_match":
                why["recognition"] += 1             # opened as somebody else, or nobody found
            elif pad_check_reason(r["reason"]):
                why["pad"] += 1
            else:
                why["other"] += 1
        out["not_opened_by"] = why
        out["bpcer_pad"] = rate(why["pad"], n - fta)
    else:
        out["apcer"] = rate(len(opened), n)
        out["apcer_acquired"] = rate(len(opened), n - fta)
    return out


def gate_rates(bona_rows, attack_rows: dict, enrolled=None, people: int | None = None
               ) -> dict:
    """The report's gate section: per class rates, APCER_max (over all presentations and over
    the acquired), BPCER (all and acquired), FTA of all attacks. With ``enrolled`` (the
    people whose enrolment was kept; rows carry ``person``) and ``people``: the failure to
    enrol of the people (ISO/IEC 19795-1's FTE) and the bona fide rates of the enrolled
    people's presentations (``bona_fide_enrolled``, ``bpcer_enrolled``, ``bpcer_pad_enrolled``):
    a person never enrolled cannot be opened for, which is their FTE, not a PAD error."""
    species = {sp: class_rates(rows, False) for sp, rows in attack_rows.items()}
    out = {"bona_fide": class_rates(bona_rows, True), "attack": species}
    if enrolled is not None:
        mine = class_rates([r for r in bona_rows if r["person"] in enrolled], True)
        out["bona_fide_enrolled"] = mine
        out["bpcer_enrolled"] = mine["bpcer_all"]["rate"]
        out["bpcer_pad_enrolled"] = mine["bpcer_pad"]["rate"]
        if people is not None:
            out["fte"] = rate(people - len(set(enrolled)), people)

    def worst(key):
        vals = {sp: v[key]["rate"] for sp, v in species.items() if v[key]["rate"] is not None}
        if not vals:
            return None, None
        sp = max(vals, key=vals.get)
        return vals[sp], sp

    out["apcer_max"], out["apcer_max_species"] = worst("apcer")
    out["apcer_max_acquired"], out["apcer_max_acquired_species"] = worst("apcer_acquired")
    out["bpcer_all"] = out["bona_fide"]["bpcer_all"]["rate"]
    out["bpcer_acquired"] = out["bona_fide"]["bpcer_acquired"]["rate"]
    out["bpcer_pad"] = out["bona_fide"]["bpcer_pad"]["rate"]
    every = [r for rows in attack_rows.values() for r in rows]
    out["attack_fta"] = rate(sum(is_fta(r["reason"]) for r in every), len(every))
    return out
