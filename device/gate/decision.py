"""What one presentation ends in: a :class:`Decision` (open or deny, with the reason, the
prompt for the person and every stage's time) and :class:`Deny`, the exception a stage raises
to end the presentation with a reason."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Decision:
    decision: str = "deny"                 # "open" or "deny"
    reason: str = ""
    prompt: str = ""
    user_id: str | None = None
    candidate: str | None = None           # closest enrolled user of a no-match (identify):
    #                                        attempt accounting only, never logged or shown
    score: float | None = None
    threshold: float | None = None
    p_live: float | None = None
    live: bool | None = None
    p_phantom: float | None = None         # X-ray phantom check (device.models.phantom), where
    #                                        liveness passed; never logged
    second_look: str | None = None         # opened | denied | failed: frame 0 was unsure and
    #                                        the sensor was re-captured (None: no second look;
    #                                        device.gate.second_look); audited
    binding: float | None = None           # sensor binding distance (device.gate.sensor_binding)
    palm_lines: float | None = None        # the binding's palm-line agreement (NIR); never logged
    sensor_identity: str | None = None     # checked | denied | not_enrolled | other_sensor
    #                                        (None: not run; device.gate.sensor_identity_stage)
    sensor_identity_score: float | None = None   # its agreement (NIR: normalised by the
    #                                        person's cohort where their templates carry the
    #                                        pair); never logged
    sensor_identity_raw: float | None = None     # the agreement before that normalisation
    #                                        (= the score where none); never logged
    sensor_identity_bucket: str | None = None    # the score's band around the limit in force
    #                                        (device.store.audit.bucket_score); audited
    sensor_identity_raw_bucket: str | None = None   # the raw agreement's band around the
    #                                        signed raw min_agreement; audited
    sensor_identity_by: str | None = None  # the identity check that denied: patch | lines
    #                                        (the lines sum) | size (the hand size) |
    #                                        lookalike (a listed look-alike agreed more); audited
    identity_by_held: str | None = None    # the identity check that denied (as
    #                                        sensor_identity_by) when a held-back binding deny
    #                                        then decided (device.gate.binding_release) and
    #                                        the identity fields were dropped; evaluations only,
    #                                        never logged
    lookalikes: str | None = None          # checked | denied | not_listed (enrolled before the
    #                                        lists; device.gate.lookalikes) | None: not run;
    #                                        audited
    hand_size: str | None = None           # checked | denied | not_enrolled (templates kept
    #                                        without a size) | None: not run
    #                                        (device.gate.hand_size)
    hand_size_ratio: float | None = None   # the views' hand over the enrolled; never logged
    binding_size_term: str | None = None   # "released": the binding failed only by its size
    #                                        term and the identity checks released it; audited
    #                                        (device.gate.binding_release)
    binding_identified: str | None = None  # "released": the binding's score was within the
    #                                        wider limit and the identity checks released it;
    #                                        audited (device.gate.binding_release)
    views_used: int = 0
    template_version: int | None = None
    stages_ms: dict = field(default_factory=dict)
    stages_cpu_ms: dict = field(default_factory=dict)   # CPU time of the stage's threads
    stages_at_ms: dict = field(default_factory=dict)    # [start, end] from the presentation's
    #                                                     start (stages run on two threads)
    critical_path: list = field(default_factory=list)   # the stages the decision waited for
    total_ms: float = 0.0
    total_cpu_ms: float = 0.0
    relay: str = "none"                    # none | pulsed | error
    burst: str = ""
    segmentation: dict = field(default_factory=dict)   # views acquired per region source
    substages_ms: dict = field(default_factory=dict)   # front-end steps, summed over views
    rois: list = field(default_factory=list)   # in memory only (contact sheet); never logged
    landmarks: dict = field(default_factory=dict, repr=False)   # view -> (21, 2) hand
    #                                        landmarks (sensor binding); in memory only
    sensor_sr: np.ndarray | None = None
    sensor_probes: object = field(default=None, repr=False)   # the binding's HandProbes
    sensor_patch: object = field(default=None, repr=False)    # enrolment: the sensor palm
    #                                        patch (device.gate.sensor_identity); in memory only
    sensor_size: object = field(default=None, repr=False)     # enrolment: the views' hand
    #                                        size (device.gate.hand_size); in memory only

    @property
    def opened(self) -> bool:
        return self.decision == "open"

    @property
    def idle(self) -> bool:
        """No hand in any view: nobody presented anything (not audited, not an attempt)."""
        return self.reason == "quality:no_hand"

    def summary(self) -> dict:
        """What ``palmgate run`` prints (the journal), the status file and the gate's log
        hold: the outcome, never the score or p(live) -- exact scores let whoever reads the
        journal or the status file hill-climb toward the threshold (the audit log keeps a
        coarse band, ``device.store.audit.bucket_score``)."""
        d = {k: getattr(self, k) for k in ("decision", "reason", "prompt", "user_id", "live",
                                           "views_used", "relay", "burst")}
        d["stages_ms"] = {k: round(v, 1) for k, v in self.stages_ms.items()}
        d["total_ms"] = round(self.total_ms, 1)
        return d

    def debug(self) -> dict:
        """``summary()`` with the exact score, threshold and p(live) (5 decimals): for
        ``palmgate identify/verify --scores`` and the demo on synthetic people only."""
        d = self.summary()
        for k in ("score", "threshold", "p_live"):
            v = getattr(self, k)
            d[k] = None if v is None else round(float(v), 5)
        return d


class Deny(Exception):
    def __init__(self, reason: str, prompt: str = "", detail: str = ""):
        super().__init__(detail or reason)
        self.reason, self.prompt, self.detail = reason, prompt, detail
