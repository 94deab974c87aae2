"""The clock of one presentation's stages, which run on more than one thread.

:meth:`StageClock.run` times a stage on whatever thread calls it: its wall time (``stages_ms``),
its CPU time (``stages_cpu_ms``: the calling thread's own CPU time plus that of the pool tasks
the stage hands out through :func:`cpu_map` -- the process CPU clock would count the other
stages running beside it) and its span from the start of the presentation (``stages_at_ms``:
[start, end] ms). A stage over its ``[timeouts]`` limit raises :class:`Deny`
``timeout:<stage>`` when it returns (Python cannot pre-empt it).

:func:`critical_path` names the chain of stages that the decision waited for.
"""
from __future__ import annotations

import threading
import time

from device.gate.decision import Deny

_local = threading.local()


def cpu_map(pool, fn, items):
    """``pool.map(fn, items)``, each task's thread CPU time added to the stage that asked
    (the calling thread's :meth:`StageClock.run`); outside a timed stage a plain map."""
    acc = getattr(_local, "acc", None)
    if acc is None:
        return pool.map(fn, items)

    def task(x):
        c0 = time.thread_time()
        try:
            return fn(x)
        finally:
            acc.append(time.thread_time() - c0)
    return pool.map(task, items)


class StageClock:
    """Wall time, CPU time and span of every stage of one presentation (each stage's entries
    are written by the one thread that runs it)."""

    def __init__(self, limits, t0: float | None = None):
        self.limits = limits
        self.t0 = time.perf_counter() if t0 is None else t0
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.at: dict[str, list] = {}

    def run(self, name: str, fn, *a):
        prev = getattr(_local, "acc", None)
        acc: list = []
        _local.acc = acc
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return fn(*a)
        finally:
            t1 = time.perf_counter()
            _local.acc = prev
            ms = (t1 - t0) * 1e3
            self.wall[name] = ms
            self.cpu[name] = (time.thread_time() - c0 + sum(acc)) * 1e3
            self.at[name] = [round((t0 - self.t0) * 1e3, 2), round((t1 - self.t0) * 1e3, 2)]
            lim = self.limits[name]
            if ms > lim:
                raise Deny(f"timeout:{name}", "please present your palm again",
                           f"{name} took {ms:.0f} ms > {lim} ms")

    def into(self, out, names=None) -> None:
        """Copy the stages' times (all, or ``names``) into a Decision."""
        for n in (self.wall if names is None else names):
            if n in self.wall:
                out.stages_ms[n] = self.wall[n]
                out.stages_cpu_ms[n] = self.cpu[n]
                out.stages_at_ms[n] = self.at[n]


def critical_path(at: dict, chains) -> list[str]:
    """The chain (of ``chains``, each a sequence of stage names) whose last timed stage ended
    last: the stages the decision waited for."""
    best, end = [], -1.0
    for chain in chains:
        ran = [s for s in chain if s in at]
        if ran and at[ran[-1]][1] > end:
            best, end = ran, at[ran[-1]][1]
    return best
