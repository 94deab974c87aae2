"""The look-alike lists kept up between presentations (:mod:`device.gate.lookalikes`).

Enrolment at this gate makes the lists both ways (:mod:`device.gate.lookalike_lists`). Anyone
else who holds sensor templates of the gate's kind and no list -- received from another gate
of the site (the sync client applies a change without an identity stage,
:mod:`device.site.client`; a change of other bones drops the old list with the old
templates), enrolled before the lists were kept, or enrolled while the check was off -- gets
theirs here, and is put on everyone else's:

- **Where.** ``palmgate run`` calls :meth:`ListUpkeep.tick` after every presentation, idle
  ones too (:mod:`device.service`), on the gate's own store connection in the gate's own
  thread: never during a decision, and for about :data:`SLICE_S` a call (no comparison is
  started that would end past it, by the last one's time; at least one a call).
  ``palmgate lookalikes --build`` runs it to the end (:meth:`ListUpkeep.run`), on its own
  connection, beside a running gate.
- **How.** One person at a time: their comparisons with everyone of the kind
  (:func:`~device.gate.lookalike_lists.compare_one`, one person's templates read and unsealed
  at a time) outside any transaction, over as many slices as they take, until a last look
  finds no one new; then one short transaction compares whoever came since (at most
  :data:`RESIDUAL_MOST`, else they wait for the next slices) and writes their list and every
  list that changes, with the audit record ``lookalike_lists_built``
  (:func:`~device.gate.lookalike_lists.write`).
- **A round** is the people without a list when it starts, in id order. Each pair of them is
  compared once: the first one's comparisons give the second one's entry (:attr:`near`
  keeps only the pairs at :data:`~device.gate.lookalikes.LIST_FLOOR` or more), unless either
  changed since. Someone who changed meanwhile waits for the next round; new work is looked
  for at most every :data:`POLL_S` when there was none.
- **Meanwhile** a person without a list decides ``lookalikes = not_listed`` (unchecked) and
  is on no one's list: while such people are at most the signed ``most``, every decision
  compares the frame with them too (:func:`device.gate.lookalikes.newcomers`); ``palmgate
  status`` counts them (``users_without_lookalike_list``), the gate logs their number at its
  start.
- **Cost.** One pair comparison (~25-55 ms on a 2-core x86 at one thread) per enrolled person
  for each person without a list, spread over idle slices: a received person at 1,000
  people about a minute of them; a whole gallery without lists (an upgrade) N^2/2.
"""
from __future__ import annotations

import logging
import math
import time

from device.gate import lookalike_lists as LL
from device.gate.lookalikes import LIST_FLOOR
from device.store import lookalike_rows as LR

log = logging.getLogger("palmgate.gate")

SLICE_S = 0.1
"""About how long one :meth:`ListUpkeep.tick` works (the wait it can add before the next
capture)."""

POLL_S = 5.0
"""How often, with nothing to do, the store is looked at for people without a list."""

RESIDUAL_MOST = 8
"""The most people a list's transaction compares (those who came between the last look and
it); more wait for the next slices, so no transaction holds the store for long."""

RETRY_S = 60.0
"""The wait after a failed slice (logged; the gate goes on deciding)."""


class ListUpkeep:
    """``ListUpkeep(identity, store).tick()`` between presentations; ``run()`` to the end."""

    def __init__(self, identity, store, audit: dict | None = None, clock=time.monotonic):
        self.agree = LL.comparer(identity)
        self.identity = identity
        self.kind = getattr(identity, "kind", None)
        self.store, self.audit, self.clock = store, audit, clock
        self.round: dict = {}       # user_id -> stamp, of everyone at the round's start
        self.todo: list = []        # the round's people without a list, not yet taken
        self.done: dict = {}        # user_id -> stamp: whose list this round wrote
        self.odd: dict = {}         # user_id (done) -> round people not compared at their
        #                             round stamp (changed meanwhile)
        self.near: dict = {}        # frozenset pair of the round -> S >= LIST_FLOOR
        self.cur = None             # (user_id, stamp, Plan, user ids left to compare)
        self.next_look = 0.0
        self.pair_s = 0.0           # the last comparison's time (a slice ends before the
        self._moved = False         # next would pass it; at least one a slice)
        self.stats = {"people_without_a_list": 0, "lists_made": 0, "lists_written": 0,
                      "pairs_compared": 0, "pairs_stopped_by_prefilter": 0}

    @property
    def active(self) -> bool:
        """Whether the gate has the look-alikes' check (signed ``lookalikes``)."""
        return self.agree is not None

    def pending(self) -> bool:
        return self.cur is not None or bool(self.todo)

    def tick(self, budget_s: float = SLICE_S) -> bool:
        """:meth:`step`, never raising: a failure is logged and retried after
        :data:`RETRY_S` (a half-made person is compared again from the start)."""
        try:
            return self.step(budget_s)
        except Exception as e:      # noqa: BLE001 - never stops the gate
            log.error("look-alike lists: %s: %s (retried in %.0f s)", type(e).__name__, e,
                      RETRY_S)
            self.cur, self.todo = None, []
            self.next_look = self.clock() + RETRY_S
            return False

    def step(self, budget_s: float = SLICE_S) -> bool:
        """About ``budget_s`` of work (at least one comparison; none started that the last
        one's time says would end past it); True while a person is half made or the round
        has more."""
        if self.agree is None:
            return False
        end = self.clock() + budget_s
        self._moved = False
        while True:
            if self.cur is None and not self._take():
                return False
            if self._compare(end) and self._write():
                self.cur = None
            if self.clock() + self.pair_s >= end:
                return self.pending()

    def run(self) -> dict:
        """Every person without a list made (the ``--build`` command); returns the counts."""
        if self.agree is None:
            raise ValueError("no signed 'lookalikes' numbers in this gate's binding file")
        while self.step(math.inf):
            pass
        return dict(self.stats,
                    people=len(LR.gallery(self.store, self.kind, lists=False)[0]))

    # ------------------------------------------------------------------ the steps
    def _take(self) -> bool:
        """The next person of the round (a new round when it is over and one is due)."""
        while True:
            if not self.todo:
                if self.clock() < self.next_look or not self._new_round():
                    return False
            u = self.todo.pop(0)
            stamp, blobs = LR.templates(self.store, u, self.kind)
            if not blobs or stamp != self.round[u]:
                continue                    # changed since the round began: the next one
            p = LL.new_plan(self.identity, blobs)
            for v, sv in self.done.items():    # compared with u in v's turn
                if u not in self.odd[v]:
                    p.seen[v] = (sv, self.near.get(frozenset((u, v)), math.nan))
            left = [v for v in sorted(self.round, reverse=True) if v != u and v not in p.seen]
            self.cur = (u, stamp, p, left)
            return True

    def _new_round(self) -> bool:
        stamps, lists = LR.gallery(self.store, self.kind)
        self.round, self.done, self.odd, self.near = stamps, {}, {}, {}
        self.todo = sorted(u for u in stamps if u not in lists)
        if not self.todo:
            self.next_look = self.clock() + POLL_S
            return False
        if not self.stats["people_without_a_list"]:
            self.stats["people_without_a_list"] = len(self.todo)
        log.info("look-alike lists: %d of %d people have none; making them between "
                 "presentations", len(self.todo), len(stamps))
        return True

    def _compare(self, end: float) -> bool:
        """The half-made person compared with more people; True when with everyone the store
        holds now (whoever came meanwhile joins the ones left)."""
        u, _, p, left = self.cur
        while True:
            while left:
                t = self.clock()
                if self._moved and t + self.pair_s > end:
                    return False    # the next one would end past the slice
                LL.compare_one(p, self.store, left.pop())
                self.pair_s = self.clock() - t
                self._moved = True
                self.stats["pairs_compared"] += 1
            left.extend(LL.missing(p, self.store, u))
            if not left:
                return True

    def _write(self) -> bool:
        """The person's list and every list that changes, in one short transaction; False
        (nothing written, the person still half made) when more than :data:`RESIDUAL_MOST`
        came since the last look: they are compared in the next slices, not in it."""
        u, stamp, p, left = self.cur
        with self.store.transaction():
            now = LR.gallery(self.store, self.kind)
            if now[0].get(u) != stamp or u in now[1]:
                return True         # changed, or listed by someone else meanwhile
            late = LL.unseen(p, now[0], u)
            if len(late) > RESIDUAL_MOST:
                left.extend(late)
                return False
            n = LL.write(p, self.store, u, stamp[0], "lookalike_lists_built", self.audit, now)
        self.stats["lists_made"] += 1
        self.stats["lists_written"] += n
        self.stats["pairs_stopped_by_prefilter"] += p.stopped
        self.done[u] = stamp
        self.odd[u] = set(LL.unseen(p, self.round, u))
        for v, (_, s) in p.seen.items():
            if v in self.round and s >= LIST_FLOOR:
                self.near[frozenset((u, v))] = s
        return True


def upkeep_for_gate(gate) -> ListUpkeep | None:
    """The running gate's upkeep (None: no identity stage, or no look-alikes' check)."""
    ident = getattr(gate.pipeline, "identity", None)
    if ident is None or getattr(gate, "store", None) is None:
        return None
    u = ListUpkeep(ident, gate.store, {"operator": "palmgate run (look-alike lists)",
                                       "terminal": gate.cfg.gate.terminal})
    return u if u.active else None
