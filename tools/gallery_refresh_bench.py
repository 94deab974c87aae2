"""The first decision after a store change: the gate's full gallery reload against the patch.

    python -m tools.gallery_refresh_bench --users 10000 --changes 6 [--views 3] [--json]

Setup (a child process, not timed, its memory not the gate's): a sealed template store of
``users`` users in a temporary folder -- 4 planted synthetic people enrolled through the real
enrolment path (their genuine bursts are the presentations), the rest distractor users of 2
protected templates each (random unit cells through ``enrol_many``), as ``palmgate bench``
makes them, but here sealed in the store, because the gallery is read from it.

Then, for each mode (``patch``: the gate as shipped; ``full``: ``Gate.refresh`` replaced by
``Gate.reload``, the gate before this change), a fresh process runs the real gate loop on
that store (int8 models, the LCUS simulator): one presentation with no change (``plain``),
then ``changes`` times: a change committed by another connection (another process, as
``palmgate users`` or the site sync thread: enrol a new user, re-enrol, revoke (delete),
access time update, disable, holiday, in turn), then the next presentation. Printed: the
refresh alone and the whole first decision after the change (medians of wall and process CPU
ms), the decisions, peak RSS (``ru_maxrss``: the gate's start, with its full load, included;
``peak_rss_before_changes_mb`` is it before the first change, so a larger ``peak_rss_mb``
means a refresh or a presentation went above the start: mode ``none``, the same presentations
with no change, tells which) and the resident set after the changes.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

PLANTED = 4


def _cfg(tmp, views):
    from device.config import load_config
    from device.synth.source import DEMO_THRESHOLDS
    feature = load_config(None).match.feature
    return load_config(None, gate={"views": views, "precision": "int8", "threads": 2,
                                   "cooldown_s": 0.0, "min_views": min(2, views)},
                       paths={"store": f"{tmp}/templates.db",
                              "device_key": f"{tmp}/device.key"},
                       liveness={"sensor": "nir"}, attempts={"max_failures": 10 ** 6},
                       match={"threshold": DEMO_THRESHOLDS[feature], "feature": feature})


def build(tmp, users, views, seed=0) -> None:
    """The store of ``users`` users and the rendered bursts, in ``tmp``."""
    from device.eval.bench import _bursts, render
    from device.gate.enrol import enrol_user
    from device.gate.pipeline import Pipeline
    from device.protect.core import ProtectedTemplate, enrol_many
    from device.store.store import TemplateStore
    cfg = _cfg(tmp, views)
    render(tmp, PLANTED, 12, views, "nir", seed)
    pipe = Pipeline(cfg)
    store = TemplateStore(cfg.paths.store, key_path=cfg.paths.device_key, create=True)
    for i in range(PLANTED):
        enrol_user(pipe, store, f"person-{i:03d}", _bursts(f"{tmp}/enrol/{i:03d}", views))
    ex, pc = pipe.extractor, pipe.protect_config
    rng = np.random.default_rng(seed)
    n, step = users - PLANTED, 100
    for lo in range(0, n, step):
        k = min(step, n - lo)
        x = rng.standard_normal((k * 2, ex.n_cells, ex.dim)).astype(np.float32)
        dat, key, msk, fil = enrol_many(x, pc, ex.importance, rng)
        with store.transaction():
            for j in range(k):
                ts = [ProtectedTemplate(dat[i], key[i], msk[i],
                                        None if fil is None else fil[i], pc)
                      for i in (2 * j, 2 * j + 1)]
                store.enrol(f"distractor-{lo + j:06d}", ts)
    print(f"built {store.count()}", file=sys.stderr, flush=True)
    store.close()
    pipe.close()


def _change(admin, k, pipe, rng, tag: int = 0) -> str:
    """The k-th change, committed through ``admin`` (another connection); ``tag``: which run
    (each changes other users)."""
    from device.protect.core import ProtectedTemplate, enrol_many
    from device.store.holidays import add_holiday
    ex, pc = pipe.extractor, pipe.protect_config

    def templates(n=2):
        x = rng.standard_normal((n, ex.n_cells, ex.dim)).astype(np.float32)
        d, kk, m, f = enrol_many(x, pc, ex.importance, rng)
        return [ProtectedTemplate(d[i], kk[i], m[i], None if f is None else f[i], pc)
                for i in range(n)]
    kind = ("enrol", "re_enrol", "revoke", "update", "disable", "holiday")[k % 6]
    victim = f"distractor-{100 * (1 + tag) + k:06d}"
    if kind == "enrol":
        admin.enrol(f"new-{tag}-{k:04d}", templates())
    elif kind == "re_enrol":
        admin.enrol(victim, templates(), replace=True)
    elif kind == "revoke":
        admin.delete_user(victim)
    elif kind == "update":
        admin.update_user(victim, valid_until=time.time() + 86400 * (30 + k))
    elif kind == "disable":
        admin.set_enabled(victim, False)
    else:
        add_holiday(admin, f"2027-{2 + tag % 10:02d}-{1 + k % 28:02d}", "bench")
    return kind


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20, 1)


def run(tmp, mode, views, changes, seed=1) -> dict:
    from device.gate.gate import Gate
    from device.ops.memory import trim, tune_malloc
    from device.sources.replay import ReplaySource
    from device.store.store import TemplateStore
    tune_malloc()
    cfg = _cfg(tmp, views)
    t0 = time.perf_counter()
    gate = Gate(cfg)
    start_s = time.perf_counter() - t0
    trim()
    admin = TemplateStore(cfg.paths.store, key_path=cfg.paths.device_key, create=False)
    timed = []
    if mode == "full":
        gate.refresh = lambda: gate.reload() or "reloaded"
    inner = gate.refresh

    def refresh():
        w, c = time.perf_counter(), time.process_time()
        done = inner()
        timed.append(((time.perf_counter() - w) * 1e3, (time.process_time() - c) * 1e3, done))
        return done
    gate.refresh = refresh
    src = ReplaySource(f"{tmp}/present", views=views)
    src.start()
    left = [len(src)]

    def burst():
        if left[0] == 0:                 # the same bursts again
            src.start()
            left[0] = len(src)
        left[0] -= 1
        return src.capture_burst()
    rng = np.random.default_rng(seed)
    out = {"mode": mode, "gate_start_s": round(start_s, 2), "gallery": len(gate.pipeline.gallery)}
    try:
        for _ in range(2):                                  # warm-up
            gate.present(burst())
        d = gate.present(burst())
        out["plain"] = {"wall_ms": round(d.total_ms, 1), "cpu_ms": round(d.total_cpu_ms, 1),
                        "reason": d.reason}
        out["peak_rss_before_changes_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        rows = []
        for k in range(changes):
            kind = "none" if mode == "none" else \
                _change(admin, k, gate.pipeline, rng, ("patch", "full").index(mode))
            n = len(timed)
            d = gate.present(burst())
            r = timed[n] if len(timed) > n else (None, None, "no refresh")
            rows.append({"change": kind, "refresh_wall_ms": r[0], "refresh_cpu_ms": r[1],
                         "refresh": r[2], "decision_wall_ms": d.total_ms,
                         "decision_cpu_ms": d.total_cpu_ms, "reason": d.reason})
    finally:
        admin.close()
        gate.close()
    med = lambda k: round(float(np.median([r[k] for r in rows if r[k] is not None] or [np.nan])),
                          1)
    out.update({
        "changes": len(rows),
        "refresh_ms": {"wall_median": med("refresh_wall_ms"), "cpu_median": med("refresh_cpu_ms")},
        "first_decision_ms": {"wall_median": med("decision_wall_ms"),
                              "cpu_median": med("decision_cpu_ms")},
        "per_change": [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()}
                       for r in rows],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_mb": _rss_now_mb(),
        "load_average_1min": round(os.getloadavg()[0], 2)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--changes", type=int, default=6)
    ap.add_argument("--modes", default="patch,full",
                    help="comma-separated: patch, full, none (the same presentations, no change)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--_build", help=argparse.SUPPRESS)
    ap.add_argument("--_run", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._build:
        build(a._build, a.users, a.views)
        return 0
    if a._run:
        print(json.dumps(run(a._run[0], a._run[1], a.views, a.changes)))
        return 0
    tmp = tempfile.mkdtemp(prefix="palmgate-refresh-bench-")
    me = [sys.executable, "-m", "tools.gallery_refresh_bench", "--users", str(a.users),
          "--views", str(a.views), "--changes", str(a.changes)]
    try:
        t0 = time.time()
        subprocess.run(me + ["--_build", tmp], check=True)
        res = {"users": a.users, "views": a.views, "build_s": round(time.time() - t0, 1)}
        for mode in a.modes.split(","):
            p = subprocess.run(me + ["--_run", tmp, mode], stdout=subprocess.PIPE, text=True)
            if p.returncode:
                raise SystemExit(f"the {mode} run failed ({p.returncode})")
            res[mode] = json.loads(p.stdout.strip().splitlines()[-1])
            print(f"{mode}: refresh {res[mode]['refresh_ms']}, first decision "
                  f"{res[mode]['first_decision_ms']}, peak RSS {res[mode]['peak_rss_mb']} MB",
                  file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(res, indent=None if a.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
