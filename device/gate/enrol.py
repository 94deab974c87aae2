"""Enrolment: bursts of one person -> palm regions -> one fused template per burst (the
burst's views fused into one palm feature, seed 000) -> protected templates (seed 002, a fresh
key each) -> the sealed store; with the NIR identity check on, one sealed sensor template a
burst too (its sensor frame's palm patch, device.gate.sensor_identity), in the same
transaction. The plaintext features live only in this
function's locals. In split mode (``[split] mode = "split"``) the regions go to the two
nodes as shares instead, and each node keeps its share of every template."""
from __future__ import annotations

import numpy as np

from device.gate.decision import Deny
from device.gate import lookalike_lists as LL
from device.gate.enrol_checks import PresentationRefused, find_duplicates, screen_presentations
from device.store import sensor_templates


class EnrolError(ValueError):
    pass


class EnrolmentRefused(EnrolError):
    """An enrolment presentation failed quality or liveness (``reason``: the gate's deny
    reason, e.g. ``quality:blurred``, ``not_live``, ``liveness_unavailable``)."""

    def __init__(self, msg: str, reason: str = ""):
        super().__init__(msg)
        self.reason = reason


class DuplicatePalm(EnrolError):
    """The palm is already enrolled under other id(s) (``matches``)."""

    def __init__(self, msg: str, matches: list[str]):
        super().__init__(msg)
        self.matches = matches


def enrol_user(pipeline, store, user_id: str, bursts, replace: bool = False,
               label: str = "", terminal: str = "", allow_duplicate: bool = False,
               site=None, operator: str = "") -> dict:
    """Enrol ``user_id`` from ``bursts``. Every burst must pass the gate's quality and
    liveness checks (:class:`EnrolmentRefused`), and the palm must match nobody else at the
    identification threshold (:class:`DuplicatePalm`) unless ``allow_duplicate`` (twins'
    hands and the like; audited). Refusals are audited too. ``site``: None, or
    ``site(user_id, plain, label, sensor=...)`` called with the plaintext templates (and the
    sensor templates' bytes, or None) before they are dropped (a site gate seals them for the
    other gates: device.site)."""
    from device.protect.core import enrol
    terminal = terminal or pipeline.cfg.gate.terminal
    bursts = list(bursts)
    if not bursts:
        raise EnrolError(f"no enrolment presentation for {user_id!r}")
    try:
        found: list = []
        per_burst = screen_presentations(pipeline, bursts, found)
    except PresentationRefused as e:
        _refused(store, user_id, e.deny.reason, terminal)
        raise EnrolmentRefused(f"enrolment of {user_id!r} refused: {e}", e.deny.reason) \
            from None
    rejected = sum(len(b.views) - len(r) for b, r in zip(bursts, per_burst))   # views
    try:
        dups = find_duplicates(pipeline, store, user_id, per_burst)
    except Deny as d:
        _refused(store, user_id, d.reason, terminal)
        raise EnrolError(f"enrolment of {user_id!r}: the duplicate check could not run "
                         f"({d.reason}: {d.detail}); nothing enrolled") from None
    dup_audit = {}
    if dups and not allow_duplicate:
        _refused(store, user_id, "duplicate of " + ", ".join(dups), terminal)
        raise DuplicatePalm(f"enrolment of {user_id!r} refused: this palm is already enrolled "
                            f"as {', '.join(map(repr, dups))} (a second id for one palm lets "
                            f"it pass as either); if they really are two people with alike "
                            f"palms (twins), enrol with --allow-duplicate (audited)", dups)
    if dups:
        dup_audit["reason"] = ("allow_duplicate: same palm as " + ", ".join(dups))[:200]
    rois = [r for rs in per_burst for r in rs]
    if getattr(pipeline, "split", None) is not None:
        del per_burst
        return _enrol_split(pipeline, store, user_id, rois, rejected, terminal, replace,
                            dup_audit)
    sensor = sensor_blobs(pipeline, found)
    if sensor == []:        # the identity check is on, and no sensor template: fail secure
        why = getattr(pipeline.identity, "error", None)
        reason = "liveness_unavailable" if why else "sensor_identity"
        _refused(store, user_id, reason, terminal)
        why = why or "no presentation gave a sensor palm patch with the hand's size measured"
        raise EnrolmentRefused(f"enrolment of {user_id!r} refused: {why} (the sensor "
                               f"identity check is on: without a sensor template the user "
                               f"would pass it unchecked)", reason)
    # the look-alike lists' comparisons, before the transaction (device.gate.lookalike_lists)
    looks = LL.plan(pipeline.identity, store, user_id, sensor) if sensor else None
    # one template per presentation: its views fused into one palm feature (seed 000)
    plain = np.concatenate([pipeline.templates(rs) for rs in per_burst])
    del per_burst
    tmpls = [enrol(x, pipeline.protect_config, pipeline.extractor.importance) for x in plain]
    if site is not None:        # the sensor templates travel with the palm's (device.site)
        site(user_id, plain, label, sensor=sensor or None)
    del plain
    # the templates, the sensor templates and their audit record in one transaction
    lists = 0
    with store.transaction():
        version = store.enrol(user_id, tmpls, replace=replace, label=label,
                              audit={"views": len(rois),
                                     "terminal": terminal or pipeline.cfg.gate.terminal,
                                     **({"operator": operator} if operator else {}),
                                     **({} if sensor is None else
                                        {"sensor_templates": len(sensor)}), **dup_audit})
        if sensor:
            sensor_templates.insert(store, user_id, version, sensor, pipeline.identity.kind)
            lists = LL.write(looks, store, user_id, version)
    return {"user_id": user_id, "templates": len(tmpls), "version": version,
            "sensor_templates": len(sensor or []), "lookalike_lists": lists,
            "views_rejected": rejected, "rois": rois, "duplicate_of": dups}


def sensor_blobs(pipeline, found: list) -> list | None:
    """The sensor templates (bytes) of the screened presentations ``found`` (their
    Decisions), one a presentation whose palm patch could be made and whose views' hand size
    was measured (:func:`device.gate.hand_size.measured`, the signed ``min_distances``),
    each with that size; None when the pipeline has no identity check (``[liveness]
    sensor_identity`` off for its sensor). A template kept without a size would skip the
    size check at every decision (``hand_size = "not_enrolled"``), so a presentation
    without one keeps no sensor template, as one without a patch. Where the signed numbers
    name a cohort (NIR), every template carries the enrolment's cohort (mean, sd)
    (:meth:`~device.gate.sensor_identity_stage.SensorIdentityStage.enrol_stats`), by which the
    gate normalises the user's agreement (:mod:`device.gate.identity_cohort`)."""
    from device.gate.hand_size import MIN_DISTANCES, measured
    from device.gate.sensor_identity import patch_to_bytes
    ident = getattr(pipeline, "identity", None)
    if ident is None:
        return None
    hs = (getattr(ident, "numbers", None) or {}).get("hand_size") or {}
    least = hs.get("min_distances", MIN_DISTANCES)
    kept = [d for d in found
            if d.sensor_patch is not None and measured(getattr(d, "sensor_size", None), least)]
    stats = getattr(ident, "enrol_stats", None)
    pair = stats([d.sensor_patch for d in kept]) if stats is not None and kept else None
    return [patch_to_bytes(d.sensor_patch, d.sensor_size, cohort=pair) for d in kept]


def _refused(store, user_id: str, reason: str, terminal: str) -> None:
    """Audit a refused enrolment (its own transaction: nothing else was written)."""
    try:
        store.audit.append("enrol_refused", user_id=user_id, reason=reason[:200],
                           terminal=terminal)
    except Exception:       # noqa: BLE001 - the refusal stands; the error says why
        pass


def _enrol_split(pipeline, store, user_id, rois, rejected, terminal, replace=False,
                 dup_audit=None) -> dict:
    """Split mode (seed 003): every view's region goes to the two nodes as shares; each node
    stores its share of the template (one slot per view, the user id beside it). No template,
    plaintext or protected, is written on the terminal; its store gets the audit record.
    The regions are dropped here (the returned dict has none). ``replace``: the user's old
    slots are first tombstoned on both nodes (a split delete; refused while it is pending on
    a node); the new templates always get fresh slots and masks."""
    from device.gate.split_stage import SplitUnavailable
    split = pipeline.split
    if split.store is None:
        split.store = store
    if replace:
        d = split.delete(user_id)
        if d["status"] == "pending":
            del rois[:]
            raise EnrolError(f"split re-enrolment of {user_id!r}: the old templates are not "
                             f"yet deleted on node(s) {d['pending_nodes']} ({d.get('error')}); "
                             f"nothing enrolled, the delete stays pending")
    try:
        r = split.enrol(user_id, rois)
    except SplitUnavailable as e:
        raise EnrolError(f"split enrolment of {user_id!r} failed: {e}") from None
    n = len(rois)
    del rois[:]
    store.audit.append("enrol", user_id=user_id, views=n, mode="split",
                       templates=len(r.get("slots", [])),
                       terminal=terminal or pipeline.cfg.gate.terminal, **(dup_audit or {}))
    return {"user_id": user_id, "templates": len(r.get("slots", [])), "version": None,
            "views_rejected": rejected, "split": True, "slots": r.get("slots", []),
            "rois": []}
