"""Making the look-alike lists (:mod:`device.gate.lookalikes`): at each enrolment, both ways;
for everyone else who holds sensor templates and no list, between presentations
(:mod:`device.gate.lookalike_upkeep`).

- **At enrolment** (:func:`plan`, then :func:`write` in the enrolment's transaction). The new
  person's sensor templates are compared with every enrolled person's of the same kind
  (:func:`~device.gate.lookalikes.pair_agreement`, the gate's comparison both ways round):
  their own list is those at ``S >=`` :data:`~device.gate.lookalikes.LIST_FLOOR`, and every
  enrolled person who keeps a list gets the new person's entry (or loses a stale one, at a
  re-enrolment). The comparisons run before the transaction (one person's templates read at
  a time; decisions and their audit records are not held up); in the transaction the people
  enrolled or re-enrolled since are compared too (by their rows' stamp,
  :func:`device.store.lookalike_rows.gallery`), so no list misses anyone.
- **Cost.** One pair comparison per enrolled person of the kind (18 of the gate's patch
  comparisons: ~25 ms on a 2-core x86 at one thread; docs/results.md), i.e. seconds at a
  few hundred people and minutes at 10,000.
- **Prefilter.** Where ``sensor_identity.lookalikes.prefilter`` is signed, a pair is compared
  in full only if the coarse grids of :mod:`device.gate.bone_prefilter` say it could be a
  look-alike pair; the others are not listed (as under the floor).
- **Privacy.** It unseals every enrolled person's sensor templates on the device (one at a
  time), as the duplicate-palm check compares the new palm with every enrolled palm; a
  decision unseals the claimed person's and their listed look-alikes' only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from device.gate import bone_prefilter as BP
from device.gate import lookalikes as LA
from device.store import lookalike_rows as LR


@dataclass
class Plan:
    kind: str
    mine: list                          # the person's template patches
    agree: object                       # agree(templates, probe) -> agreement
    seen: dict = field(default_factory=dict)      # user_id -> (stamp compared, S)
    pre: dict | None = None             # the signed prefilter (None: every pair in full)
    desc: dict | None = None            # the person's grids (device.gate.bone_prefilter)
    stopped: int = 0                    # pairs the prefilter stopped (S NaN: not listed)


def new_plan(identity, blobs: list) -> Plan | None:
    """A person's plan: their patches, the stage's comparison and, where signed, the
    prefilter with their grids; None without signed ``lookalikes`` or without templates."""
    agree = comparer(identity)
    if agree is None or not blobs:
        return None
    mine = patches(blobs)
    pre = identity.numbers["lookalikes"].get("prefilter")
    return Plan(identity.kind, mine, agree, pre=pre,
                desc=None if pre is None else BP.describe(mine))


def comparer(identity):
    """``agree(templates, probe)``: the identity stage's comparison with its signed numbers
    (:meth:`~device.gate.sensor_identity_stage.SensorIdentityStage.compare`); None when the
    stage has no signed ``lookalikes``."""
    n = getattr(identity, "numbers", None)
    if not n or n.get("lookalikes") is None:
        return None
    return lambda tmpls, probe: identity.compare(tmpls, probe, n)


def patches(blobs) -> list:
    from device.gate.sensor_identity import template_parts
    return [template_parts(b)[0] for b in blobs]


def compare_one(p: Plan, store, uid: str) -> tuple | None:
    """``p`` compared with ``uid``'s templates as the store holds them now (read and unsealed
    one person at a time): ``p.seen[uid] = (their stamp, S)``; returns the stamp (None: they
    hold none now)."""
    stamp, blobs = LR.templates(store, uid, p.kind)
    if blobs:
        theirs = patches(blobs)
        if p.pre is not None and not BP.passes(p.desc, BP.describe(theirs), p.pre):
            p.seen[uid] = (stamp, math.nan)         # no look-alike by the cheap first look
            p.stopped += 1
        else:
            p.seen[uid] = (stamp, LA.pair_agreement(p.mine, theirs, p.agree))
    return stamp


def unseen(p: Plan, stamps: dict, user_id: str) -> list:
    """Who of ``stamps`` (user id -> stamp) ``p`` has not compared at that stamp (never the
    plan's own ``user_id``)."""
    return [u for u, s in stamps.items() if u != user_id and p.seen.get(u, (None,))[0] != s]


def compare_missing(p: Plan, store, user_id: str, stamps: dict) -> None:
    """``p.seen`` brought to ``stamps``: everyone not yet compared at their stamp now is."""
    for uid in unseen(p, stamps, user_id):
        compare_one(p, store, uid)


def missing(p: Plan, store, user_id: str) -> list:
    """Who the store holds now (outside any transaction) that ``p`` has not compared at their
    stamp: enrolled, received or re-enrolled since."""
    return unseen(p, LR.gallery(store, p.kind, lists=False)[0], user_id)


def plan(identity, store, user_id: str, blobs: list, passes: int = 3) -> Plan | None:
    """The comparisons of the new person's templates with every enrolled person's (now,
    outside any transaction; again for whoever came meanwhile, up to ``passes`` times, so
    that the transaction compares next to no one); None when there is no check (no signed
    ``lookalikes``) or no template."""
    p = new_plan(identity, blobs)
    if p is None:
        return None
    for _ in range(passes):
        todo = missing(p, store, user_id)
        if not todo:
            break
        for u in todo:
            compare_one(p, store, u)
    return p


def write(p: Plan | None, store, user_id: str, version: int, record: str =
          "lookalike_lists_written", audit: dict | None = None, now=None) -> int:
    """Inside a store transaction: people enrolled or re-enrolled since the comparisons
    compared too, then ``user_id``'s list and every list that changes (read now, so an entry
    written by another enrolment meanwhile stays) written, with the audit record ``record``.
    ``now``: the store's :func:`~device.store.lookalike_rows.gallery` already read in this
    transaction. Returns how many lists were written (0: no plan)."""
    if p is None:
        return 0
    stamps, lists = now or LR.gallery(store, p.kind)
    compare_missing(p, store, user_id, stamps)
    mine: dict = {}
    written = 0
    for uid in sorted(stamps):
        if uid == user_id:
            continue
        _, s = p.seen[uid]
        mine = LA.merged(mine, uid, s)
        if uid in lists:
            old = LA.list_from_bytes(lists[uid])
            new = LA.merged(old, user_id, s)
            if new != old:
                LR.write_list(store, uid, stamps[uid][0], p.kind, LA.list_to_bytes(new))
                written += 1
    LR.write_list(store, user_id, version, p.kind, LA.list_to_bytes(mine))
    store._record(record, audit, user_id=user_id, template_version=version,
                  count=written + 1, users=len(mine))
    return written + 1


def report(st, kind: str, numbers: dict | None) -> dict:
    """People with templates of ``kind``, with a list, and the look-alikes a decision would
    compare (at the signed ``min_pair_agreement`` and ``most``)."""
    stamps, lists = LR.gallery(st, kind)
    out = {"kind": kind, "people": len(stamps), "people_with_a_list": len(lists),
           "people_without_a_list": LR.users_without_list(st, kind),
           "check": "off (no signed lookalikes numbers)" if numbers is None else numbers}
    if numbers is not None and lists:
        every = {**numbers, "most": LA.MOST_KEPT}
        parsed = {u: LA.list_from_bytes(b) for u, b in lists.items()}
        n = [len(LA.to_compare(e, numbers, u)) for u, e in parsed.items()]
        m = [len(LA.to_compare(e, every, u)) for u, e in parsed.items()]
        out.update(lookalikes_compared_mean=round(sum(n) / len(n), 3),
                   lookalikes_compared_max=max(n),
                   people_with_lookalikes=sum(1 for k in n if k),
                   lookalikes_over_the_limit_max=max(m),        # before the cap at ``most``
                   people_over_most=sum(1 for k in m if k > numbers["most"]))
    return out
