"""Enrolment: bursts of one person -> palm regions -> cell templates -> protected templates
(seed 002, a fresh key each) -> the sealed store. The plaintext features live only in this
function's locals. In split mode (``[split] mode = "split"``) the regions go to the two
nodes as shares instead, and each node keeps its share of every template."""
from __future__ import annotations

from device.vision.quality import CorruptFrame, QualityIssue, frame_check


class EnrolError(ValueError):
    pass


def enrol_user(pipeline, store, user_id: str, bursts, replace: bool = False,
               label: str = "", terminal: str = "", operator: str = "") -> dict:
    from device.protect.core import enrol
    rois, issues = [], []
    for b in bursts:
        ok = []
        for k, v in enumerate(b.views):
            try:
                frame_check(v, pipeline.cfg.quality)
                ok.append(k)
            except (CorruptFrame, QualityIssue) as e:
                issues.append(str(e))
        r, iss = pipeline.regions(b.views, ok)
        rois += r
        issues += [str(e) for e in iss]
    if not rois:
        raise EnrolError(f"no usable palm view for {user_id!r}: "
                         f"{'; '.join(issues) or 'no views'}")
    if getattr(pipeline, "split", None) is not None:
        return _enrol_split(pipeline, store, user_id, rois, issues, terminal, replace)
    plain = pipeline.templates(rois)
    tmpls = [enrol(x, pipeline.protect_config, pipeline.extractor.importance) for x in plain]
    del plain
    # the templates and their audit record in one transaction
    version = store.enrol(user_id, tmpls, replace=replace, label=label,
                          audit={"views": len(rois),
                                 "terminal": terminal or pipeline.cfg.gate.terminal,
                                 **({"operator": operator} if operator else {})})
    return {"user_id": user_id, "templates": len(tmpls), "version": version,
            "views_rejected": len(issues), "rois": rois}


def _enrol_split(pipeline, store, user_id, rois, issues, terminal, replace=False) -> dict:
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
                       terminal=terminal or pipeline.cfg.gate.terminal)
    return {"user_id": user_id, "templates": len(r.get("slots", [])), "version": None,
            "views_rejected": len(issues), "split": True, "slots": r.get("slots", []),
            "rois": []}
