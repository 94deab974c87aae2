"""The gate's sensor identity stage: after the match, the sensor frame's identity feature against
the identified person's own sensor templates (NIR: the palm patch,
:mod:`device.gate.sensor_identity`; X-ray: the bone patch, :mod:`device.gate.xray_bone_patch`;
each sensor's templates are of its own kind, :data:`device.store.sensor_templates.SENSOR_KIND`).

- **When.** After the feature and match (the person is known) and the sensor chain's verdict
  (a presentation the liveness or the binding denied never gets here), before the person's
  access times -- in both the overlapped and the sequential pipeline
  (:meth:`device.gate.pipeline.Pipeline.decide`), so they decide alike.
- **What.** The palm patch of the (calibrated) sensor frame where the binding placed the views'
  hand (:func:`~device.gate.sensor_identity.probe_patch`), against the sealed sensor templates
  of the identified user's current enrolment, unsealed for that one user only
  (:func:`device.store.sensor_row_tags.read_user`: checked against the rows' tags kept since
  the start, so rows removed or changed outside the store deny ``error:identity``); the best
  agreement over them under the signed ``min_agreement`` (``sensor_identity`` of
  ``models/binding_<sensor>.json``), or a patch that cannot be compared, denies
  ``sensor_identity``. The Decision keeps the score judged and the raw agreement (NIR: before
  the cohort's normalisation; :mod:`device.gate.identity_cohort`), the audit record each as a
  band around its limit (``sensor_identity_bucket``, ``sensor_identity_raw_bucket``).
- **The hand's size.** Once the patch agrees, the views' hand size at this presentation
  (:func:`device.gate.hand_size.hand_size` of the binding's triangulated landmarks) against
  the sizes kept with the user's templates (:func:`~device.gate.hand_size.size_ratio`): off by
  more than the signed ``hand_size.max_off`` (either way), or not measurable, denies
  ``sensor_identity`` (``Decision.hand_size = "denied"``, in the audit record) -- the victim's
  own live hand under the sensor with a print of it at another scale before the cameras.
  Templates enrolled before the size was kept (format 1) skip it (``hand_size =
  "not_enrolled"``; ``palmgate status`` counts such users); enrolment keeps no template
  without a measured size (:func:`device.gate.enrol.sensor_blobs`); sizes kept and no signed
  numbers for them deny ``liveness_unavailable``.
- **Users without sensor templates** (enrolled before this check, or in split mode, where the
  terminal's store keeps no template): ``[liveness] sensor_identity = "when_enrolled"``
  (default) lets them pass unchecked and says so (``Decision.sensor_identity =
  "not_enrolled"``, in the audit record); ``"required"`` denies them ``sensor_identity``
  until they are re-enrolled; ``"off"`` checks nobody. A user whose templates are all of the
  other sensor's kind (the gate's sensor changed, the other sensor's gate's backup restored, a
  site enrolment made at a gate of the other sensor) is such a user here, named
  ``other_sensor`` instead of ``not_enrolled`` (and logged).
- **Fail secure.** Signed numbers missing or malformed (an older models folder): a user with
  sensor templates is denied ``liveness_unavailable``, one without follows the policy; a
  sealed template that fails authentication denies (``error:identity``, the store's fault is
  logged).
- **Per sensor default.** ``[liveness] sensor_identity = "sensor_default"`` (the default) is
  :data:`SENSOR_DEFAULT` of the sensor (:func:`policy_of`).

- **Look-alikes.** Once the patch, lines and size passed, the frame is compared also with the
  claimed person's listed look-alikes (:mod:`device.gate.lookalikes`, signed
  ``sensor_identity.lookalikes``; absent: no check): one that agrees more denies
  ``sensor_identity`` (``Decision.sensor_identity_by = "lookalike"``); a person without a
  list yet (enrolled before the lists were kept, or received from another gate: the gate
  makes theirs between presentations, :mod:`device.gate.lookalike_upkeep`) is
  ``Decision.lookalikes = "not_listed"``. Until their lists are made, people without one
  are compared too, at every decision, when they are at most the signed ``most``
  (:func:`device.gate.lookalikes.newcomers`): no one's list can name them yet.

``patch(frame, probes)`` is what enrolment keeps for each presentation
(:meth:`device.gate.pipeline.Pipeline.screen`, :mod:`device.gate.enrol`).
"""
from __future__ import annotations

import logging

from device.gate import hand_size as H
from device.gate import identity_cohort as IC
from device.gate import lookalikes as LA
from device.gate import sensor_identity as S
from device.gate.decision import Deny
from device.store.audit import bucket_score
from device.store.sensor_templates import FEATURE_KINDS, LIST_KIND, SENSOR_KIND

log = logging.getLogger("palmgate.gate")

REASON = "sensor_identity"
POLICIES = ("when_enrolled", "required", "off")
SENSOR_DEFAULT = {"nir": "when_enrolled", "xray": "when_enrolled"}
"""What ``[liveness] sensor_identity = "sensor_default"`` means for each sensor. X-ray's is
``when_enrolled`` by the rule written first (docs/results.md "The X-ray check's default, a
second validation seed"): at the signed threshold its check denied 1/1000 genuine presentations
on validation seed 23 (<= 5 allowed) and refused no enrolment (<= 1 of 40 allowed). Synthetic
only: real radiographs (wrist deviation moves the carpals) may deny more; a site turns it off
with ``sensor_identity = "off"``."""


def refine_turns(sensor: str, n: dict) -> tuple:
    """The turns tried around the comparison's best turn: X-ray's signed ``refine_deg``
    (:func:`device.gate.sensor_identity.identity_numbers`), or for a file without it
    :data:`~device.gate.xray_bone_patch.REFINE_DEG` (older signed files decide as before);
    none for NIR."""
    if sensor != "xray":
        return ()
    r = n.get("refine_deg")
    if r is None:
        from device.gate.xray_bone_patch import REFINE_DEG as r
    return tuple(r)


def policy_of(liveness) -> str:
    """The site's sensor identity policy for its sensor (``sensor_default`` resolved)."""
    p = liveness.sensor_identity
    return SENSOR_DEFAULT.get(liveness.sensor, "off") if p == "sensor_default" else p


class SensorIdentityStage:
    """``stage(frame, probes, out)`` after the match (``out.user_id`` the identified user);
    ``store`` is attached by the gate (:meth:`Pipeline.attach_store`)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.sensor = cfg.liveness.sensor
        self.policy = policy_of(cfg.liveness)
        self.kind = SENSOR_KIND[self.sensor]
        self.store, self.tags = None, None
        self.numbers, self.error = None, None
        self.other_kinds: tuple = ()        # the last user's rows of another sensor's kind
        self.sizes: list = []               # the last user's enrolled hand sizes
        self.listed = None                  # the last user's look-alike list (None: none)
        self.waiting = (None, [])           # (sensor tag, people without a list) read at
        #                                     that tag (device.store.lookalike_rows.waiting)
        self.probe = None                   # the last frame's patch compared
        self.pair = None                    # the last user's cohort (mean, sd), None: raw
        self.cohort = None                  # the signed cohort's patches (enrolment; lazy)
        self.warned: set = set()            # users named other_sensor in the log once
        self.load()

    def load(self):
        """The signed numbers (re-tried after a failure)."""
        from device.gate.binding_numbers import load_binding_numbers
        try:
            n = load_binding_numbers(self.sensor, self.cfg.paths.models or None)
            self.numbers = S.identity_numbers(n.doc)
            self.error = None if self.numbers else \
                f"no signed sensor_identity numbers in binding_{self.sensor}.json"
        except Exception as e:     # noqa: BLE001 - ModelError, OSError, ValueError
            self.numbers, self.error = None, f"{type(e).__name__}: {e}"
        if self.error:
            log.error("sensor identity check unavailable: %s", self.error)
        return self.numbers

    def patch(self, frame, probes):
        """The palm patch of ``frame`` at the binding's ``probes`` (None: not placed, or no
        numbers to make it with)."""
        n = self.numbers or (self.load() if self.error else None)
        if n is None:
            return None
        if self.sensor == "xray":
            from device.gate.xray_bone_patch import probe_bone_patch
            return probe_bone_patch(frame, probes, n["patch_mm"])
        return S.probe_patch(frame, probes, self.sensor, n["veins_out"], n["patch_mm"],
                             sigma_mm=n["line_sigma_mm"])

    def size(self, probes):
        """The views' hand size (:func:`device.gate.hand_size.hand_size`) of the binding's
        ``probes`` (None: not placed)."""
        if probes is None:
            return None
        return H.hand_size(getattr(probes, "points", None), getattr(probes, "px_mm", None))

    def agreement(self, tmpls: list, frame, probes, n) -> float:
        """:meth:`raw_agreement` normalised by the last user's cohort pair where they have one
        (:meth:`scored`)."""
        return self.scored(self.raw_agreement(tmpls, frame, probes, n), n)

    def raw_agreement(self, tmpls: list, frame, probes, n) -> float:
        """The best agreement of ``frame``'s patch at ``probes`` with the templates ``tmpls``
        (:func:`device.gate.sensor_identity.best_agreement`, X-ray's turn refined by
        :meth:`refine`; NaN when none compares)."""
        self.probe = self.patch(frame, probes)      # kept for the look-alikes' check
        return self.compare(tmpls, self.probe, n)

    def compare(self, tmpls: list, probe, n) -> float:
        """The best agreement of the patch ``probe`` with ``tmpls`` as the gate compares them
        (the signed shift, X-ray's turn refined by :meth:`refine`; NaN when none compares):
        the claimed person's, a look-alike's, and the look-alike lists' pair agreement."""
        return S.best_agreement(tmpls, probe, n["shift_mm"], refine=self.refine(n))

    def refine(self, n) -> tuple:
        """:func:`refine_turns` of this stage's sensor."""
        return refine_turns(self.sensor, n)

    def normalising(self, n) -> bool:
        """Whether the last user's agreement is normalised (:mod:`device.gate.identity_cohort`):
        their templates carry the cohort pair and the signed numbers a cohort."""
        return self.pair is not None and n.get("cohort") is not None

    def scored(self, raw: float, n) -> float:
        """The score judged for the last user: ``raw`` normalised by their cohort pair where
        :meth:`normalising`, else ``raw`` itself (:func:`device.gate.identity_cohort.judged`)."""
        return IC.judged(raw, self.pair, n.get("cohort"))

    def enrol_stats(self, patches: list):
        """The cohort (mean, sd) of an enrolment's palm patches over the signed cohort
        (:func:`device.gate.identity_cohort.cohort_stats`, the gate's best agreement); None when
        the signed numbers name no cohort (the templates are then judged raw)."""
        n = self.numbers or (self.load() if self.error else None)
        c = None if n is None else n.get("cohort")
        if c is None or self.sensor != "nir":
            return None
        if self.cohort is None:
            self.cohort = IC.load_cohort(c["file"], self.cfg.paths.models or None)
        return S.cohort_pair(patches, self.cohort, n["shift_mm"])

    def size_ratio(self, probes, hs) -> float:
        """The views' hand at ``probes`` over the sizes kept with the last user's templates
        (:func:`device.gate.hand_size.size_ratio`, the signed ``hs`` numbers; NaN: not
        measured)."""
        return H.size_ratio(self.sizes, self.size(probes), hs["min_distances"])

    def check_size(self, probes, out, n) -> None:
        """Raise :class:`Deny` ``sensor_identity`` when the views' hand is not the enrolled
        hand's size (:mod:`device.gate.hand_size`): off by more than the signed ``max_off``,
        or not measured. Templates kept without a size skip it (``not_enrolled``); sizes
        enrolled and no signed numbers for them deny ``liveness_unavailable``."""
        if not self.sizes:
            out.hand_size = "not_enrolled"
            return
        hs = n.get("hand_size")
        if hs is None:
            raise Deny("liveness_unavailable", "", "hand size: no signed hand_size numbers "
                                                   f"in binding_{self.sensor}.json")
        r = self.size_ratio(probes, hs)
        out.hand_size_ratio = r
        if not H.size_off(r) <= hs["max_off"]:
            out.hand_size = out.sensor_identity = "denied"
            out.sensor_identity_by = "size"
            raise Deny(REASON, "please present your palm again",
                       "the views' hand is not the enrolled hand's size")
        out.hand_size = "checked"

    def check_lines_sum(self, score: float, out, n) -> None:
        """Raise :class:`Deny` ``sensor_identity`` when the sensor frame's palm lines agree
        too little with the enrolled patch and the views' palm together
        (:func:`device.gate.sensor_identity.lines_sum` under the signed ``min_lines_sum``, or
        ``min_lines_sum_unsure`` when ``out.p_live`` is under ``unsure_below`` or not known:
        :func:`~device.gate.sensor_identity.least_lines_sum`; skipped where the file has no
        such number or the binding compared no lines)."""
        t = S.least_lines_sum(n, getattr(out, "p_live", None))
        j = None if t is None else S.lines_sum(score, getattr(out, "palm_lines", None))
        if j is not None and not j >= t:
            out.sensor_identity, out.sensor_identity_by = "denied", "lines"
            raise Deny(REASON, "please present your palm again",
                       "the sensor frame's palm lines agree too little with the enrolled "
                       "palm's and the views' together")

    def attach(self, store) -> None:
        """The store to read the sensor templates from; their rows' tags kept from now on
        (:mod:`device.store.sensor_row_tags`: a row removed or changed outside the store
        while the gate runs denies, it never reads as "not enrolled")."""
        from device.store.sensor_row_tags import prime
        self.store, self.tags = store, None
        try:
            self.tags = prime(store)
        except Exception as e:     # noqa: BLE001 - the first decision checks again, and denies
            log.error("sensor templates not checked at start: %s", e)
        self.warn_unlisted()

    def warn_unlisted(self) -> int:
        """Log, where the signed numbers have the look-alikes' check, how many people have no
        look-alike list (enrolled before the lists, or received from another gate: unchecked
        against look-alikes until :mod:`device.gate.lookalike_upkeep` makes theirs between
        presentations, or ``palmgate lookalikes --build``); returns how many."""
        if not (self.numbers and self.numbers.get("lookalikes")) or self.store is None:
            return 0
        from device.store.lookalike_rows import users_without_list
        try:
            n = users_without_list(self.store, self.kind)
        except Exception as e:     # noqa: BLE001 - a report only; the decisions check the rows
            log.error("look-alike lists not counted at start: %s", e)
            return 0
        if n:
            log.warning("%d people have no look-alike list: not checked against look-alikes "
                        "until the gate has made theirs between presentations (or "
                        "'palmgate lookalikes --build')", n)
        return n

    def templates(self, user_id: str, version: int | None = None) -> list:
        """The identified user's sensor templates (unsealed), checked against the rows' tags
        kept; every one must be of ``version`` (the gallery's template version of the user,
        else the user's record): TamperedError otherwise, and for rows of a user the store
        has no record of. The kinds of the user's rows of another sensor (not compared) are
        kept in :attr:`other_kinds`."""
        self.other_kinds, self.sizes, self.pair, self.listed = (), [], None, None
        if self.store is None:
            return []
        rows = self.rows(user_id, version)
        if not rows:
            return []
        self.other_kinds = tuple(sorted({k for _, k, _ in rows
                                         if k != self.kind and k in FEATURE_KINDS}))
        lists = [b for _, k, b in rows if k == LIST_KIND[self.kind]]
        self.listed = LA.list_from_bytes(lists[-1]) if lists else None
        tmpls = [S.template_parts(b) for _, k, b in rows if k == self.kind]
        self.sizes = [z for _, z, _ in tmpls if z is not None]
        self.pair = IC.user_stats([c for _, _, c in tmpls])
        return [p for p, _, _ in tmpls]

    def rows(self, user_id: str, version: int | None = None) -> list:
        """(version, kind, bytes) of every sensor row of ``user_id``, unsealed, checked
        against the rows' tags kept; every one must be of ``version`` (else the user's
        record's): TamperedError otherwise, and for rows of a user the store has no record
        of; [] when the user has none."""
        from device.store.errors import TamperedError
        from device.store.sensor_row_tags import read_user
        rows, self.tags = read_user(self.store, user_id, self.tags)
        if not rows:
            return []
        if version is None:
            u = self.store.get_user(user_id)
            version = None if u is None else u.version
        if version is None or any(v != version for v, _, _ in rows):
            raise TamperedError(f"the sensor templates of {user_id!r} are not of its "
                                f"enrolment (version {version})")
        return rows

    def __call__(self, frame, probes, out) -> float | None:
        """Raise :class:`Deny` ``sensor_identity`` when the sensor frame is not the identified
        person's; returns the agreement (None when not compared)."""
        if not out.user_id:
            return None
        tmpls = self.templates(out.user_id, out.template_version)
        if not tmpls:
            other = self.other_kinds
            out.sensor_identity = "other_sensor" if other else "not_enrolled"
            if other:       # enrolled with another sensor's check: not comparable here
                first = out.user_id not in self.warned and len(self.warned) < 10000
                if first:
                    self.warned.add(out.user_id)
                (log.warning if first else log.info)(
                    "sensor identity: %r has sensor templates of %s only, none of this "
                    "gate's %s: %s", out.user_id, ", ".join(other), self.kind,
                    "denied (required)" if self.policy == "required" else
                    "not checked (when_enrolled); re-enrol them on this sensor")
            if self.policy == "required":
                raise Deny(REASON, "please ask to be enrolled again",
                           f"{out.user_id!r} has no sensor template of {self.kind} and the "
                           f"site requires one")
            return None
        n = self.numbers or self.load()
        if n is None:
            raise Deny("liveness_unavailable", "", f"sensor identity: {self.error}")
        raw = self.raw_agreement(tmpls, frame, probes, n)
        score = self.scored(raw, n)
        out.sensor_identity_score, out.sensor_identity_raw = score, raw
        raw_limit = n["min_agreement"]
        n = IC.in_force(n, self.normalising(n))     # the cohort's limits for a normalised score
        out.sensor_identity_bucket = bucket_score(score, n["min_agreement"])
        out.sensor_identity_raw_bucket = bucket_score(raw, raw_limit)
        if not score >= n["min_agreement"]:
            out.sensor_identity, out.sensor_identity_by = "denied", "patch"
            raise Deny(REASON, "please present your palm again",
                       "the sensor frame's palm is not the identified person's")
        self.check_lines_sum(score, out, n)
        self.check_size(probes, out, n)
        self.check_lookalikes(out, n, raw)
        out.sensor_identity = "checked"
        return score

    def check_lookalikes(self, out, n, raw: float) -> None:
        """Raise :class:`Deny` ``sensor_identity`` when one of the claimed person's listed
        look-alikes agrees with the frame's patch (:attr:`probe`, as the claimed person's
        comparison made it; ``raw`` their agreement) more than they do (:mod:`device.gate.lookalikes`:
        the signed ``lookalikes`` numbers; absent: no check). A person enrolled before the
        lists were kept is not checked (``Decision.lookalikes = "not_listed"``, audited;
        ``palmgate lookalikes --build`` makes their lists)."""
        la = n.get("lookalikes")
        if la is None:
            return
        if self.listed is None:
            out.lookalikes = "not_listed"
            return
        near = LA.to_compare(self.listed, la, out.user_id)
        others = {}
        for v in near + LA.newcomers(self.newcomers(la), la, out.user_id, near):
            tmpls = self.person(v)
            if tmpls:
                others[v] = self.compare(tmpls, self.probe, n)
        out.lookalikes = "checked"
        if LA.out_agreed(raw, others, la["lead"]) is not None:
            out.lookalikes = out.sensor_identity = "denied"
            out.sensor_identity_by = "lookalike"
            raise Deny(REASON, "please present your palm again",
                       "the sensor frame agrees more with another enrolled person's")

    def newcomers(self, la) -> list | None:
        """The people without a list (:func:`device.store.lookalike_rows.waiting`), read again
        only when the store's sensor rows changed (their tag kept by :meth:`rows`)."""
        tag = getattr(self.tags, "total", None)
        if tag is None or self.waiting[0] != tag:
            from device.store.lookalike_rows import waiting
            self.waiting = (tag, waiting(self.store, self.kind, la["most"]))
        return self.waiting[1]

    def person(self, user_id: str) -> list:
        """A listed look-alike's templates of this gate's kind (unsealed and checked as
        :meth:`rows` checks them; [] when they are no longer enrolled)."""
        return [S.template_parts(b)[0] for _, k, b in self.rows(user_id) if k == self.kind]


def identity_stage(cfg) -> SensorIdentityStage | None:
    """The pipeline's stage: None unless the liveness and its binding run (the patch is placed
    by the binding), the sensor has an identity feature and the site's policy is not off."""
    lv = cfg.liveness
    policy = policy_of(lv)
    if not (lv.enabled and lv.binding) or lv.sensor not in S.IDENTITY_SENSORS \
            or policy == "off":
        if lv.enabled and not lv.binding and lv.sensor in S.IDENTITY_SENSORS \
                and policy != "off":
            log.warning("[liveness] sensor_identity = %s not applied: the binding is off "
                        "(no sensor identity check)", policy)
        return None
    return SensorIdentityStage(cfg)
