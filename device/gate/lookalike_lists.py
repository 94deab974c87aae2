"""Making the look-alike lists (:mod:`device.gate.lookalikes`): at each enrolment, both ways,
and for a store whose people were enrolled before the lists were kept (``palmgate
lookalikes --build``).

- **At enrolment** (:func:`plan`, then :func:`write` in the enrolment's transaction). The new
  person's sensor templates are compared with every enrolled person's of the same kind
  (:func:`~device.gate.lookalikes.pair_agreement`, the gate's comparison both ways round):
  their own list is those at ``S >=`` :data:`~device.gate.lookalikes.LIST_FLOOR`, and every
  enrolled person who keeps a list gets the new person's entry (or loses a stale one, at a
  re-enrolment). The comparisons run before the transaction (a read snapshot: decisions
  and their audit records are not held up); in the transaction the people enrolled or
  re-enrolled since are compared too, so no list misses anyone.
- **Cost.** One pair comparison per enrolled person of the kind (18 of the gate's patch
  comparisons: ~25 ms on a 2-core x86 at one thread; docs/results.md), i.e. seconds at a
  few hundred people and minutes at 10,000.
- **Privacy.** It unseals every enrolled person's sensor templates on the device, as the
  duplicate-palm check compares the new palm with every enrolled palm; a decision unseals the
  claimed person's and their listed look-alikes' only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from device.gate import lookalikes as LA
from device.store import lookalike_rows as LR


@dataclass
class Plan:
    kind: str
    mine: list                          # the new person's template patches
    agree: object                       # agree(templates, probe) -> agreement
    seen: dict = field(default_factory=dict)      # user_id -> (version compared, S)


def comparer(identity):
    """``agree(templates, probe)``: the identity stage's comparison with its signed numbers
    (:meth:`~device.gate.sensor_identity_stage.SensorIdentityStage.compare`); None when the
    stage has no signed ``lookalikes``."""
    n = getattr(identity, "numbers", None)
    if not n or n.get("lookalikes") is None:
        return None
    return lambda tmpls, probe: identity.compare(tmpls, probe, n)


def _patches(blobs) -> list:
    from device.gate.sensor_identity import template_parts
    return [template_parts(b)[0] for b in blobs]


def _compare(p: Plan, user_id: str, feats: dict) -> None:
    """``p.seen`` brought to ``feats``: everyone not yet compared at their version now is."""
    for uid, (ver, blobs) in feats.items():
        if uid != user_id and p.seen.get(uid, (None,))[0] != ver:
            p.seen[uid] = (ver, LA.pair_agreement(p.mine, _patches(blobs), p.agree))


def plan(identity, store, user_id: str, blobs: list) -> Plan | None:
    """The comparisons of the new person's templates with every enrolled person's (now,
    outside any transaction); None when there is no check (no signed ``lookalikes``) or no
    template."""
    agree = comparer(identity)
    if agree is None or not blobs:
        return None
    p = Plan(identity.kind, _patches(blobs), agree)
    _compare(p, user_id, LR.gallery(store, identity.kind)[0])
    return p


def write(p: Plan | None, store, user_id: str, version: int) -> int:
    """Inside the enrolment's transaction: people enrolled or re-enrolled since :func:`plan`
    compared too, then the new person's list and every list that changes (read now, so an
    entry written by another enrolment meanwhile stays) written. Returns how many lists were
    written (0: no plan)."""
    if p is None:
        return 0
    feats, lists = LR.gallery(store, p.kind)
    _compare(p, user_id, feats)
    mine: dict = {}
    written = 0
    for uid in sorted(feats):
        if uid == user_id:
            continue
        ver, s = p.seen[uid]
        mine = LA.merged(mine, uid, s)
        if uid in lists:
            old = LA.list_from_bytes(lists[uid])
            new = LA.merged(old, user_id, s)
            if new != old:
                LR.write_list(store, uid, ver, p.kind, LA.list_to_bytes(new))
                written += 1
    LR.write_list(store, user_id, version, p.kind, LA.list_to_bytes(mine))
    store._record("lookalike_lists_written", None, user_id=user_id, template_version=version,
                  count=written + 1, users=len(mine))
    return written + 1


def build_missing(identity, store, audit: dict | None = None) -> dict:
    """Lists for every person of the stage's kind who has none (enrolled before the lists
    were kept), every other list brought up to date with them, in one transaction with the
    audit record ``lookalike_lists_built``. Compares each such person with every other once
    (N^2 / 2 at worst: hours at 10,000 people). ValueError without signed ``lookalikes``."""
    agree = comparer(identity)
    if agree is None:
        raise ValueError("no signed 'lookalikes' numbers in this gate's binding file")
    with store.transaction():
        feats, lists = LR.gallery(store, identity.kind)
        todo = sorted(u for u in feats if u not in lists)
        pats = {u: _patches(b) for u, (_, b) in feats.items()}
        old = {u: LA.list_from_bytes(b) for u, b in lists.items()}
        new = {**old, **{u: {} for u in todo}}
        done: set = set()
        for u in todo:
            for v in feats:
                if v == u or v in done:
                    continue
                s = LA.pair_agreement(pats[u], pats[v], agree)
                new[u] = LA.merged(new[u], v, s)
                new[v] = LA.merged(new[v], u, s)
            done.add(u)
        written = 0
        for u in sorted(new):
            if new[u] != old.get(u):
                LR.write_list(store, u, feats[u][0], identity.kind, LA.list_to_bytes(new[u]))
                written += 1
        store._record("lookalike_lists_built", audit, users=len(todo), count=written)
    return {"people_without_a_list": len(todo), "lists_written": written,
            "people": len(feats)}


def report(st, kind: str, numbers: dict | None) -> dict:
    """People with templates of ``kind``, with a list, and the look-alikes a decision would
    compare (at the signed ``min_pair_agreement`` and ``most``)."""
    feats, lists = LR.gallery(st, kind, templates=False)
    out = {"kind": kind, "people": len(feats), "people_with_a_list": len(lists),
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
