"""The palm lines' sizes searched lazily: the same agreement as every view compared at every size,
from the comparisons that can change it.

:func:`device.gate.binding_texture.sized_agreement` is the best view's best agreement at a live
hand's sizes, less a gain times the least, over the views, of each view's *gap* (how much
better it fits at another size than at a live one; never below 0). So:

- every view's live sizes are needed (the best of them is the agreement before the penalty);
- a view's gap is known exactly only once all of its other sizes are compared, but its running
  gap (the best other size so far, less its live best) is a lower bound of it, so a view whose
  running gap reaches the least gap already known can no longer lower the least: its other
  sizes are not compared;
- once one view's gap is known and no other view's running gap is below it, the least is known.

:func:`least_gap_agreement` compares one size at a time, always of the view whose running gap
is least (ties: the view that fits best at a live size), its other sizes in
:func:`search_order`. A live hand usually fits no better elsewhere in its first view (gap 0),
so its other views' other sizes are never compared: 3 live sizes x 3 views + 29 others, not
3 x 32 (validation seed 9317, 997 live presentations: 38 comparisons in 95 % of them).

The result is the one every size gives, to the last bit: a gap is ``max(others) - live`` and
``max(x - live) == max(x) - live`` in floating point (subtracting the same number keeps the
order). Pure functions; the comparison of one size is the caller's.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence


def search_order(n: int, stride: int = 3) -> list[int]:
    """The order the ``n`` other sizes of a view are compared in: every ``stride``-th first (a
    coarse sweep that finds a view's high region early, so a view that cannot lower the least
    gap is dropped after a few), then the rest in order. Only the cost depends on it."""
    coarse = [i for i in range(n) if i % stride == stride // 2]
    return coarse + [i for i in range(n) if i % stride != stride // 2]


def least_gap_agreement(agreement: Callable[[int, float], float], n_views: int,
                        live_sizes: Sequence[float], other_sizes: Sequence[float],
                        gain: float) -> float:
    """The best view's best ``agreement(view, size)`` over ``live_sizes``, less ``gain`` times
    the least over the views of ``max(0, best over other_sizes - best over live_sizes)``: the
    number of :func:`device.gate.binding_texture.sized_agreement` over those sizes, comparing
    only what can change it. NaN values are ignored, as ``nanmax`` does; views with no finite
    value at a live size count for nothing; NaN when no view has one."""
    live: dict[int, float] = {}
    for v in range(n_views):
        vals = [agreement(v, z) for z in live_sizes]
        fin = [x for x in vals if not math.isnan(x)]
        if fin:
            live[v] = max(fin)
    if not live:
        return float("nan")
    best = max(live.values())
    order = [other_sizes[i] for i in search_order(len(other_sizes))]
    running = {v: 0.0 for v in live}          # each view's gap so far (a lower bound of it)
    nxt = {v: 0 for v in live}
    known = [0.0] if not order else []       # the gaps of the views compared at every size
    while True:
        open_ = [v for v in live if nxt[v] < len(order)]
        if known and (not open_ or min(known) <= min(running[v] for v in open_)):
            break
        v = min(open_, key=lambda u: (running[u], -live[u], u))
        x = agreement(v, order[nxt[v]])
        nxt[v] += 1
        if not math.isnan(x) and x - live[v] > running[v]:
            running[v] = x - live[v]
        if nxt[v] == len(order):
            known.append(running[v])
    return best - gain * max(0.0, min(known))
