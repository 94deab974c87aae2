"""The motion-blur check over a burst: the gate's cameras expose together, so a hand that moves
smears every view of the burst, while a still palm whose creases run one way (small in the
view, light skin) can read one-directional in one camera and not in another.

Rule (pure, :func:`keep_still_views`): a view the front end refused only for ``motion_blur`` --
its regions found, the motion-blur check the one that failed -- is kept (its regions used)
when at least one other view of the same burst gave regions and is usable; when no view passes
the check, the views stay refused as before ("hold your hand still"). The front end carries the
refused view's regions and isotropy on the issue (``issue.regions``, ``issue.isotropy``), so it
runs once per view. The gate (:meth:`device.gate.pipeline.Pipeline.regions`) and enrolment
(through the same method) apply it; measurement in docs/results.md ("Motion blur over the
burst").
"""
from __future__ import annotations

KEPT_FLOOR = 0.0
"""Lowest isotropy of a kept view (0: any ``motion_blur`` view is kept when another passed)."""


def blurred_regions(issue):
    """The regions of a view refused only for ``motion_blur`` (None otherwise)."""
    if issue is None or getattr(issue, "reason", None) != "motion_blur":
        return None
    return getattr(issue, "regions", None)


def keep_still_views(results, usable, floor: float = KEPT_FLOOR) -> list:
    """``results``: one (regions | None, issue | None) per view, as the front end gave them;
    ``usable(regions)``: whether a view that gave regions is usable
    (:func:`device.vision.view_usability.view_check`). Returns the list with each
    ``motion_blur`` view whose isotropy is at least ``floor`` turned into (its regions, None)
    when some other view gave usable regions; unchanged otherwise."""
    results = list(results)
    if not any(r is not None and usable(r) for r, _ in results):
        return results
    out = []
    for r, e in results:
        kept = blurred_regions(e) if r is None else None
        if kept is not None and float(getattr(e, "isotropy", 0.0)) >= floor:
            out.append((kept, None))
        else:
            out.append((r, e))
    return out
