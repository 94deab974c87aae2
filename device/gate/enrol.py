"""Enrolment: bursts of one person -> palm regions -> cell templates -> protected templates
(seed 002, a fresh key each) -> the sealed store. The plaintext features live only in this
function's locals."""
from __future__ import annotations

from device.gate.quality import CorruptFrame, QualityIssue, frame_check


class EnrolError(ValueError):
    pass


def enrol_user(pipeline, store, user_id: str, bursts, replace: bool = False,
               label: str = "", terminal: str = "") -> dict:
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
    plain = pipeline.templates(rois)
    tmpls = [enrol(x, pipeline.protect_config, pipeline.extractor.importance) for x in plain]
    del plain
    version = store.enrol(user_id, tmpls, replace=replace, label=label)
    store.audit.append("enrol", user_id=user_id, template_version=version, views=len(rois),
                       terminal=terminal or pipeline.cfg.gate.terminal)
    return {"user_id": user_id, "templates": len(tmpls), "version": version,
            "views_rejected": len(issues), "rois": rois}
