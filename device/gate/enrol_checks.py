"""What an enrolment must pass before anything is stored (issue 18, item 7):

- every enrolment presentation passes the gate's own checks -- quality (at least ``[gate]
  min_views`` usable views), palm regions and, with ``[liveness] enabled``, liveness; a
  missing or tampered liveness model refuses, as it denies at the gate
  (:func:`screen_presentations`);
- the palm is nobody else's: each presentation is searched 1:N against every enrolled user's
  current templates -- disabled and expired users too -- at the identification threshold, and
  any other user it matches is reported (:func:`find_duplicates`). The caller refuses unless
  duplicates were explicitly allowed (twins' hands and the like), and audits either way.

Pure decisions over the pipeline's stages and the store's templates; no store writes here.
"""
from __future__ import annotations

import numpy as np

from device.gate.decision import Deny


def screen_presentations(pipeline, bursts, found: list | None = None) -> list[list]:
    """The ROIs of each burst (one list per burst). Raises ``(index, Deny)`` wrapped in
    :class:`PresentationRefused` for the first burst that fails. ``found``: gets each burst's
    Decision (what the stages found: the sensor palm patch, ``sensor_patch``)."""
    from device.gate.decision import Decision
    out = []
    for i, b in enumerate(bursts):
        try:
            d = Decision()
            out.append(pipeline.screen(b, d))
            if found is not None:
                found.append(d)
        except Deny as d:
            raise PresentationRefused(i, d) from None
    return out


class PresentationRefused(Exception):
    """Enrolment presentation ``index`` failed a gate check (``deny`` holds the reason)."""

    def __init__(self, index: int, deny: Deny):
        super().__init__(f"presentation {index + 1}: {deny.reason}"
                         + (f" ({deny.detail})" if deny.detail else ""))
        self.index, self.deny = index, deny


def all_users_gallery(pipeline, store):
    """A protected gallery of every enrolled user's current templates (enabled or not, in
    their validity window or not): a disabled Alice must not come back as "dave"."""
    from device.gate.gallery import load_gallery
    ext = pipeline.extractor
    return load_gallery(store, pipeline.protect_config, ext.importance, select=lambda u: True,
                        dim=ext.dim, shifts=ext.shifts, shortlist=pipeline.cfg.match.shortlist,
                        storage=pipeline.cfg.match.storage)[0]


def owners_above(gal, queries, threshold: float, shortlist: int | None = None) -> dict:
    """{owner: best fused score} of every owner whose template the K query views (each
    (S, G, d)) match at ``threshold`` or above; the coarse pass picks the shortlist as the
    gate's 1:N does."""
    from device.gate.gallery import _fused_exact, shortlist_of
    if len(gal) == 0:
        return {}
    idx = shortlist_of(gal, queries, shortlist)
    sc = _fused_exact(gal, queries, idx)
    out: dict = {}
    for j, s in zip(idx, sc):
        if s >= threshold:
            o = gal.owners[int(j)]
            out[o] = max(float(s), out.get(o, -np.inf))
    return out


def find_duplicates(pipeline, store, user_id: str, rois_per_burst) -> list[str]:
    """Other users (sorted) that any enrolment presentation matches at the identification
    threshold. Split mode asks the nodes (1:N on shares); a node fault raises ``Deny``."""
    split = getattr(pipeline, "split", None)
    if split is not None:
        return _split_duplicates(split, store, user_id, rois_per_burst)
    gal = all_users_gallery(pipeline, store)
    found: set = set()
    try:
        for rois in rois_per_burst:
            q = pipeline.features(rois)
            found |= {o for o in owners_above(gal, q, pipeline.threshold,
                                              pipeline.cfg.match.shortlist) if o != user_id}
    finally:
        del gal
    return sorted(found)


def _split_duplicates(split, store, user_id, rois_per_burst) -> list[str]:
    from device.gate.decision import Decision
    if split.store is None:
        split.store = store
    found = set()
    for rois in rois_per_burst:
        out = Decision()
        job = split.send(list(rois), None, out)
        try:
            split.match(job, out)
        except Deny as d:
            if d.reason.startswith("split:"):
                raise
        if out.user_id is not None and out.user_id != user_id:
            found.add(out.user_id)
    return sorted(found)
