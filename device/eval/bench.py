"""``palmgate bench``: presentation-to-relay-command latency of the real gate loop.

Setup (not timed): a sealed template store in a temporary folder with ``planted`` synthetic
people enrolled through the real enrolment path (2 presentations of K views each, one fused
template per presentation), plus distractor users up to ``users`` (2 protected templates
each, as an enrolment of two presentations leaves them, made from random unit cells with
``device.protect.core.enrol_many``; the gallery holds them in memory exactly as the gate
holds store templates, preallocated so the build never doubles it). Enrolment (2 bursts per
person) and presentation bursts (genuine presentations of the planted people) are rendered
by a child process into the replay layout, and the gate reads them one at a time as it would
from a camera; the match threshold is the demo's (synthetic hands).

Timed: ``Gate.present`` on each burst -- quality, regions (K views through the front end:
hand landmarks -> regions, the segmentation path as fallback; ``front_end_steps_ms`` splits
it into the landmark step and the fallback, summed over the views), feature (the K views
fused into one palm feature), match (1:N, one comparison per template) and, on the sensor
thread beside them, sensor (presence, SR + liveness) and binding; then the audit record and
the relay pulse over a serial line to the LCUS board simulator -- ``end_to_end_ms`` is the
time from the burst in memory to the relay command returning; ``match_ms`` the match stage
alone. ``stages_ms`` are wall times of stages that overlap (they do not add up to the end to
end); ``stages_cpu_ms`` each stage's CPU time on its threads and ``stages_share_of_cpu`` its
share of the presentation's process CPU; ``critical_path`` counts the chains the decisions
waited for. ``peak_rss_mb`` is the process's peak resident set (``ru_maxrss``), setup
included. The temporary folder is removed on the way out.
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def _ms(a) -> dict:
    a = np.asarray(a, np.float64)
    if a.size == 0:
        return {"median": None, "p95": None}
    return {"median": round(float(np.median(a)), 2), "p95": round(float(np.percentile(a, 95)),
                                                                    2)}


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _progress(msg: str) -> None:
    print(f"bench: {msg} [peak RSS {_rss_mb()} MB]", file=sys.stderr, flush=True)


def _bursts(folder, views):
    from device.sources.replay import ReplaySource
    src = ReplaySource(folder, views=views)
    src.start()
    return [src.capture_burst() for _ in range(len(src))]


def render(out, planted, presentations, views, sensor, seed) -> None:
    """Write the bench's synthetic enrolment and presentation bursts (replay layout)."""
    from device.sources.replay import write_burst
    from device.synth.source import SyntheticPeople
    planted, presentations, views, seed = int(planted), int(presentations), int(views), int(seed)
    people = SyntheticPeople(seed=seed, views=views, sensor=sensor, threads=1)
    for i in range(planted):
        for k in range(2):
            write_burst(f"{out}/enrol/{i:03d}/{k}", people.burst(i, "enrol", k))
    for k in range(presentations):
        write_burst(f"{out}/present/{k:03d}", people.burst(k % planted, "genuine", k // planted))


def bench(users: int = 10000, views: int = 3, precision: str = "int8", split: bool = False,
          presentations: int = 20, planted: int = 4, seed: int = 0, threads: int = 2,
          sensor: str = "nir", templates_per_user: int = 2, models: str | None = None,
          feature: str | None = None, landmarks: str = "full",
          landmark_precision: str | None = None, progress=_progress) -> dict:
    """The bench in a temporary folder (store, rendered bursts, split provisioning), removed
    on the way out, whatever happens."""
    tmp = tempfile.mkdtemp(prefix="palmgate-bench-")
    try:
        return _bench(tmp, users, views, precision, split, presentations, planted, seed,
                      threads, sensor, templates_per_user, models, feature, landmarks,
                      landmark_precision, progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bench(tmp, users, views, precision, split, presentations, planted, seed, threads, sensor,
           templates_per_user, models, feature, landmarks, landmark_precision,
           progress) -> dict:
    from device.config import load_config
    from device.gate.enrol import enrol_user
    from device.gate.front_end_stage import landmark_precision as landmark_precision_of
    from device.gate.gallery import GalleryBuilder
    from device.gate.gate import Gate
    from device.gate.pipeline import Pipeline
    from device.synth.source import DEMO_THRESHOLDS
    from device.sources.replay import ReplaySource
    from device.protect.core import enrol_many
    from device.store.store import TemplateStore

    from device.ops.memory import trim, tune_malloc
    tune_malloc()
    if split:
        try:
            from device.split.node import run_node  # noqa: F401
        except ImportError as e:
            raise RuntimeError(f"--split needs the split-mode package (device/eval/split_bench.py), "
                               f"which is not installed in this build: {e}") from None
    feature = feature or load_config(None).match.feature       # the gate's default
    cfg = load_config(None, gate={"views": views, "precision": precision, "threads": threads,
                                  "cooldown_s": 0.0, "min_views": min(2, views),
                                  "landmarks": landmarks,
                                  **({"landmark_precision": landmark_precision}
                                     if landmark_precision else {})},
                      paths={"store": f"{tmp}/templates.db", "device_key": f"{tmp}/device.key",
                             "models": str(models or "")},
                      liveness={"sensor": sensor}, attempts={"max_failures": 10 ** 6},
                      # the demo threshold of the feature (calibrated on synthetic people of
                      # another seed); the bench is a cost measurement
                      match={"threshold": DEMO_THRESHOLDS[feature], "feature": feature})
    pipe = Pipeline(cfg)
    if pipe.sensor is not None and pipe.sensor.load() is None:
        raise RuntimeError(f"the {precision} {sensor} sensor models cannot be loaded: "
                           f"{pipe.sensor.error}")
    progress(f"rendering {planted} enrolments and {presentations} presentations "
             f"(in a child process: its memory is not the gate's)")
    subprocess.run([sys.executable, "-c", "import sys; from device.eval.bench import render; "
                    "render(*sys.argv[1:])", tmp, str(planted), str(presentations), str(views),
                    sensor, str(seed)], check=True)
    store = TemplateStore(cfg.paths.store, key_path=cfg.paths.device_key, create=True)
    progress(f"enrolling {planted} synthetic people")
    for i in range(planted):
        enrol_user(pipe, store, f"person-{i:03d}", _bursts(f"{tmp}/enrol/{i:03d}", views))
    trim()                                   # enrolment's freed buffers back to the OS
    n_planted = store.count()["templates"]
    n_distract = max(0, users - planted)
    total = n_planted + n_distract * templates_per_user
    progress(f"building the gallery: {users} users, {total} templates")
    t_build = time.time()
    ex = pipe.extractor
    b = GalleryBuilder(pipe.protect_config, ex.importance, total, dim=ex.dim, shifts=ex.shifts,
                       shortlist=cfg.match.shortlist, storage=cfg.match.storage)
    for uid, _, ver, t in store.templates():
        b.add(uid, t)
    rng = np.random.default_rng(seed)
    step = 50                # enrol_many's float64 temporaries are the bench's, not the gate's
    g, d = ex.n_cells, ex.dim
    for lo in range(0, n_distract, step):
        n = min(step, n_distract - lo)
        base = rng.standard_normal((n, 1, g, d)).astype(np.float32)
        x = base + 0.6 * rng.standard_normal((n, templates_per_user, g, d)).astype(
            np.float32) / np.sqrt(d)
        x = (x / np.linalg.norm(x, axis=-1, keepdims=True)).reshape(-1, g, d)
        dat, key, msk, fil = enrol_many(x, pipe.protect_config, ex.importance, rng)
        b.add_arrays(np.repeat([f"distractor-{k:06d}" for k in range(lo, lo + n)],
                               templates_per_user).tolist(), dat, key, msk, fil)
        if (lo // step) % 40 == 39 or lo + n == n_distract:
            progress(f"  {lo + n}/{n_distract} distractor users")
    gallery = b.finish()
    t_build = time.time() - t_build
    gate = Gate(cfg, store=store, pipeline=pipe)
    gate.reload = lambda: None              # keep the in-memory distractor gallery
    pipe.gallery = gallery
    del gallery, b
    src = ReplaySource(f"{tmp}/present", views=views)
    try:
        progress("warm-up")
        src.start()
        for _ in range(2):
            gate.present(src.capture_burst())
        src.start()
        e2e, e2e_cpu, stages, cpu, decisions, correct = [], [], {}, {}, {}, 0
        plain_decisions = []
        segs: dict = {}
        paths: dict = {}
        sub: dict = {}
        sub_share: list = []
        for k in range(len(src)):
            bu = src.capture_burst()               # read from disk: not timed
            dd = gate.present(bu)
            e2e.append(dd.total_ms)
            e2e_cpu.append(dd.total_cpu_ms)
            for s, v in dd.stages_ms.items():
                stages.setdefault(s, []).append(v)
            for s, v in dd.stages_cpu_ms.items():
                cpu.setdefault(s, []).append(v)
            decisions[dd.reason] = decisions.get(dd.reason, 0) + 1
            p = " > ".join(dd.critical_path)
            paths[p] = paths.get(p, 0) + 1
            plain_decisions.append((dd.opened, dd.user_id))
            for m, c in dd.segmentation.items():
                segs[m] = segs.get(m, 0) + c
            for m, v in dd.substages_ms.items():
                sub.setdefault(m, []).append(v)
            if dd.total_cpu_ms > 0:
                sub_share.append(dd.substages_ms.get("landmarks_cpu", 0.0) / dd.total_cpu_ms)
            correct += dd.opened and dd.user_id == bu.meta["person"]
            if (k + 1) % 5 == 0:
                progress(f"  {k + 1}/{len(src)} presentations")
            time.sleep(cfg.relay.pulse_ms / 1000.0 * 0.1)
    finally:
        gate.close()
        store.close()
    out = {
        "end_to_end_ms": _ms(e2e),
        "match_ms": _ms(stages.get("match", [])),
        "stages_ms": {s: round(float(np.median(v)), 2) for s, v in stages.items()},
        "stages_p95_ms": {s: round(float(np.percentile(v, 95)), 2) for s, v in stages.items()},
        # process CPU time (every thread): what the work costs, whatever else loads the cores
        "end_to_end_cpu_ms": _ms(e2e_cpu),
        "stages_cpu_ms": {s: round(float(np.median(v)), 2) for s, v in cpu.items()},
        # each stage's CPU over the presentation's (medians); the stages run on two threads
        "stages_share_of_cpu": {s: round(float(np.median(v)) / float(np.median(e2e_cpu)), 3)
                                for s, v in cpu.items()} if e2e_cpu else {},
        # the stages the decision waited for (the chain that ended last), per presentation
        "critical_path": paths,
        # the front end's steps inside the regions stage, summed over a presentation's views:
        # wall time of each view's step in its region thread, and that thread's CPU time
        # (*_cpu); the share is the landmark step's CPU over the presentation's CPU
        "front_end_steps_ms": {m: round(float(np.median(v)), 2) for m, v in sub.items()},
        "landmarks_share_of_end_to_end_cpu": round(float(np.median(sub_share)), 3)
        if sub_share else None,
        "peak_rss_mb": _rss_mb(),
        "precision": precision, "feature": feature, "users": users, "views": views,
        "views_by_segmentation": segs, "landmarks": cfg.gate.landmarks,
        "landmark_precision": landmark_precision_of(cfg),
        "templates": total, "presentations": len(e2e), "decisions": decisions,
        "correct_opens": int(correct), "sensor": sensor, "threads": threads,
        "gallery_mb": round(sum(pipe.gallery.nbytes().values()) / 2 ** 20, 1),
        "build_s": round(t_build, 1), "load_average_1min": round(os.getloadavg()[0], 2),
        "gallery": "planted synthetic people from a sealed store + random-cell distractors "
                   "in memory",
    }
    if split:          # after the gate's figures: its processes are not the gate's memory
        progress("split mode (seed 003): the gate with [split] mode = split, two node "
                 "processes on loopback TCP")
        out["split"] = split_gate_bench(tmp, cfg, planted, views, min(users, SPLIT_USERS),
                                        seed, plain=plain_decisions, progress=progress)
    return out


SPLIT_USERS = 1000      # the split gallery: the seed's 1:N over 1,000 users (one slot a user)


def _split_node(role, d, peer, term, threshold, ev):
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(v, "1")
    import sys
    from device.split.node import run_node
    run_node(role, d, peer, term, threshold=threshold, allow_reveal=True, ready=ev.set,
             log=lambda m: print(f"bench: {m}", file=sys.stderr, flush=True))


def split_gate_bench(tmp, cfg, planted, views, users, seed, plain=None,
                     progress=_progress) -> dict:
    """The real gate path in split mode: a provisioning folder (the dealer; ``users - planted``
    distractor users imported as one random importance-weighted template slot each), two node
    processes (``run_node``, loopback TCP for the peer and the terminal links), the planted
    people enrolled through ``enrol_user`` (each view's template shares on the nodes), then
    the same presentation bursts through ``Gate.present`` with ``[split] mode = "split"``.
    ``latency_ms``: the split part of a presentation (feature + match stages: the terminal
    splits the K views' regions, the nodes extract and score on shares, node 0 decides);
    ``end_to_end_ms``: the whole presentation (quality, regions, liveness, split, audit,
    relay). ``rounds``/``bytes``: node-to-node per presentation (K views). ``cosine_min``: the
    split feature (``reveal`` jobs, evaluation only) against the plaintext feature of the same
    regions."""
    import multiprocessing as mp
    from pathlib import Path
    from device.gate.enrol import enrol_user
    from device.gate.gate import Gate
    from device.gate.pipeline import Pipeline
    from device.sources.replay import ReplaySource
    from device.gate.split_stage import SYNTHETIC_THRESHOLD
    from device.eval.split_bench import _free_port
    from device.split.cellnet import (DEFAULT_FEATURE, CellNet, feature_extractor,
                                      query_from_dense)
    from device.split.provision import provision_dir
    from device.store.store import TemplateStore
    d = Path(tmp) / "split"
    n_pres = len(ReplaySource(f"{tmp}/present", views=views))
    n_dist = max(0, users - planted)
    split_ext = feature_extractor(DEFAULT_FEATURE)  # what `palmgate split provision` shares
    net = CellNet.from_extractor(split_ext, DEFAULT_FEATURE)
    rng = np.random.default_rng(seed + 7)
    cells = rng.standard_normal((n_dist, 49, 16))
    cells /= np.linalg.norm(cells, axis=-1, keepdims=True)
    gal = cells * net.importance[None, :, None]
    capacity = n_dist + 2 * planted * views
    jobs = (2 * planted + n_pres + 2) * views
    progress(f"split: provisioning {capacity} template slots, {jobs + n_pres * views} "
             f"inference triples")
    checks = 2 * planted * views         # enrolment's duplicate check: a 1:N per burst
    provision_dir(d, net, "shared", capacity=capacity,
                  inferences=jobs + n_pres * views + checks + 8,
                  matches=(n_pres + 2) * views + checks + 8, gallery=gal if n_dist else None,
                  uids=[f"distractor-{k:06d}" for k in range(n_dist)] if n_dist else None)
    del gal, cells
    term = [f"127.0.0.1:{_free_port()}" for _ in (0, 1)]
    peer = f"tcp:127.0.0.1:{_free_port()}"
    ctx = mp.get_context("spawn")
    procs = []
    for role in (0, 1):
        ev = ctx.Event()
        p = ctx.Process(target=_split_node, args=(role, str(d), peer, f"tcp:{term[role]}",
                                                  SYNTHETIC_THRESHOLD, ev), daemon=True)
        p.start()
        procs.append((p, ev))
    scfg = cfg.replace(paths={"store": f"{tmp}/split-templates.db"},
                       split={"mode": "split", "transport": "tcp", "node0": term[0],
                              "node1": term[1], "dir": str(d), "connect_timeout_s": 10.0,
                              "reply_timeout_s": 60.0})
    gate = store = None
    try:
        for p, ev in procs:
            if not ev.wait(120):
                raise RuntimeError("split node did not start")
        pipe = Pipeline(scfg)
        store = TemplateStore(scfg.paths.store, key_path=scfg.paths.device_key, create=True)
        progress(f"split: enrolling {planted} people through the nodes")
        for i in range(planted):
            enrol_user(pipe, store, f"person-{i:03d}", _bursts(f"{tmp}/enrol/{i:03d}", views))
        gate = Gate(scfg, store=store, pipeline=pipe)
        src = ReplaySource(f"{tmp}/present", views=views)
        src.start()
        for _ in range(2):                                   # warm-up
            gate.present(src.capture_burst())
        src.start()
        lat, e2e, stages, rounds, nbytes, node_ms, decisions = [], [], {}, [], [], [], []
        correct, rois_all, reasons, used = 0, [], {}, []
        for k in range(len(src)):
            bu = src.capture_burst()
            time.sleep(0.5)          # presentations are apart: the nodes' offline phase
            pipe.split.last = {}
            dd = gate.present(bu)
            decisions.append((dd.opened, dd.user_id))
            reasons[dd.reason] = reasons.get(dd.reason, 0) + 1
            if "link" not in pipe.split.last:      # denied before the nodes (liveness ...)
                continue
            lat.append(dd.stages_ms["feature"] + dd.stages_ms["match"])
            e2e.append(dd.total_ms)
            for s, v in dd.stages_ms.items():
                stages.setdefault(s, []).append(v)
            link = pipe.split.last["link"]
            rounds.append(link["rounds"])
            nbytes.append(link["bytes"])
            node_ms.append(link["ms"])
            used.append(dd.views_used)
            correct += dd.opened and dd.user_id == bu.meta["person"]
            rois_all.append(pipe.regions(bu.views)[0])      # for the cosine check only
        progress("split: split feature vs plaintext feature (reveal jobs)")
        cos = []
        term_ = pipe.split._connect()
        for rois in rois_all:
            for r in rois:
                feat, _ = term_.reveal(np.asarray(r, np.float64))
                q = query_from_dense(feat).ravel()
                qr = split_ext.query(r).astype(np.float64).ravel()
                cos.append(float(q @ qr / np.linalg.norm(q) / np.linalg.norm(qr)))
    finally:
        if gate is not None:
            gate.close()
        if store is not None:
            store.close()
        for p, _ in procs:
            p.kill()
            p.join(10)
    out = {"latency_ms": _ms(lat), "end_to_end_ms": _ms(e2e),
           "stages_ms": {s: round(float(np.median(v)), 2) for s, v in stages.items()},
           "node_ms": _ms(node_ms), "rounds": int(np.median(rounds)),
           "bytes": int(np.median(nbytes)), "cosine_min": float(min(cos)) if cos else None,
           "views_used_median": float(np.median(used)) if used else None,
           "users": users, "templates": capacity, "views": views,
           "presentations": len(decisions), "timed": len(lat), "decisions": reasons,
           "correct_opens": int(correct),
           "threshold": SYNTHETIC_THRESHOLD, "transport": "tcp loopback", "mode": "shared",
           "feature": DEFAULT_FEATURE,
           "load_average_1min": round(os.getloadavg()[0], 2)}
    if plain is not None and len(plain) == len(decisions):
        out["decision_agreement"] = sum(a == b for a, b in zip(plain, decisions)) / len(plain)
    return out
