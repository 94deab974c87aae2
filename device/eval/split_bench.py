"""``split_bench``: two node processes and a terminal, timed end to end.

Inputs are real Tongji ROIs when ``../shared/data/real/tongji`` (or ``$PALMGATE_DATA/real/
tongji``) is there, else drawn line-on-noise palms. The gallery holds ``users`` templates:
the session-1 templates of the query palms plus random importance-weighted unit-cell
distractors, imported by the dealer (``Dealer.gallery_from_plain``) so that 1,000 slots do
not take 1,000 split enrolments; a query's score against them costs the same either way.
Each inference is run twice: a ``reveal`` job (evaluation only: the nodes return their
feature shares, the terminal compares the reconstructed feature with the plaintext one) and
an ``identify`` job (split extraction, 1:N Beaver scores over all users, opening to node 0,
max, decision), which is what ``latency_ms`` times, from the terminal's split to its answer.
Jobs are ``IDLE_S`` apart; the input-independent Beaver terms of the next job are computed in
that pause (the offline phase), so the latency is the online phase.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from device.split.cellnet import DEFAULT_FEATURE

SERIAL_BAUD = 921600
IDLE_S = 0.5      # pause between jobs, as between presentations at a gate: the nodes use it for
#                   the offline terms of the next job (node.TripleStock.prepare)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _tongji_dir() -> Path | None:
    for base in (os.environ.get("PALMGATE_DATA"), str(Path(__file__).resolve().parents[3]
                                                       / "shared" / "data")):
        if base and (Path(base) / "real" / "tongji").is_dir():
            return Path(base) / "real" / "tongji"
    return None


def drawn_palm(rng: np.random.Generator) -> np.ndarray:
    img = (150 + 12 * rng.standard_normal((128, 128))).astype(np.float32)
    for _ in range(rng.integers(6, 14)):
        p = rng.integers(0, 128, (3, 2)).astype(np.int32)
        cv2.polylines(img, [p.reshape(-1, 1, 2)], False, float(rng.uniform(60, 120)),
                      int(rng.integers(1, 4)))
    return np.clip(cv2.GaussianBlur(img, (3, 3), 0.8), 0, 255).astype(np.uint8)


def palm_pairs(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(session-1, session-2) ROI pairs of n palms."""
    d = _tongji_dir()
    rng = np.random.default_rng(seed)
    if d is not None:
        subj = sorted(p for p in d.iterdir() if p.is_dir())
        pick = rng.choice(len(subj), size=min(n, len(subj)), replace=False)
        out = []
        for k in pick:
            a = cv2.imread(str(subj[k] / "1_01.png"), cv2.IMREAD_GRAYSCALE)
            b = cv2.imread(str(subj[k] / "2_01.png"), cv2.IMREAD_GRAYSCALE)
            if a is not None and b is not None:
                out.append((cv2.resize(a, (128, 128)), cv2.resize(b, (128, 128))))
        if len(out) >= n:
            return out[:n]
    out = []
    for _ in range(n):
        a = drawn_palm(rng)
        out.append((a, np.roll(a, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), (0, 1))))
    return out


def _node_proc(role, directory, peer, terminal, threshold, ready):
    import os as _os
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        _os.environ.setdefault(v, "1")
    from device.split.node import serve
    import sys
    serve(role, directory, peer, terminal, threshold=threshold, allow_reveal=True,
          ready=ready.set, log=lambda m: print(m, file=sys.stderr))


def _socat_pair(tmp: Path):
    a, b = tmp / "ttyA", tmp / "ttyB"
    p = subprocess.Popen(["socat", "-d", "-d", f"pty,raw,echo=0,link={a}",
                          f"pty,raw,echo=0,link={b}"], stderr=subprocess.DEVNULL)
    for _ in range(200):
        if a.exists() and b.exists():
            return p, str(a), str(b)
        time.sleep(0.02)
    p.kill()
    raise RuntimeError("socat did not create the pty pair")


def split_bench(users: int = 1000, inferences: int = 5, transport: str = "tcp",
                seed: int = 0, mode: str = "shared", threshold: float | None = None,
                pace: bool = False, feature: str = DEFAULT_FEATURE) -> dict:
    """Latency, rounds and bytes of a split 1:N decision (two node processes) and the cosine
    of the split feature to the plaintext feature. ``transport``: "tcp" (loopback; "local"
    is the same),
    "unix" or "serial" (a socat pty pair between the nodes; ptys do not pace bytes at a baud
    rate, so ``serial_line_s`` is the time the busier direction's bytes take on a real line
    at 921,600 baud, 10 bits per byte, full duplex); ``pace=True`` makes the nodes hold their
    serial writes to that rate, so the latency is measured at the line rate (emulated)."""
    from device.split.cellnet import CellNet, feature_extractor, query_from_dense
    from device.split.node import DEFAULT_THRESHOLDS, Terminal
    from device.split.provision import provision_dir, terminal_keys

    threshold = DEFAULT_THRESHOLDS[feature] if threshold is None else threshold
    ext = feature_extractor(feature)
    net = CellNet.from_extractor(ext, feature)
    pairs = palm_pairs(inferences, seed)
    n_planted = len(pairs)
    rng = np.random.default_rng(seed + 1)
    gallery = np.zeros((users, 49, 16))
    dist = rng.standard_normal((users, 49, 16))
    gallery[:] = dist / np.linalg.norm(dist, axis=-1, keepdims=True)
    for k, (a, _) in enumerate(pairs[:users]):
        gallery[k] = ext.template(a)
    gallery *= net.importance[None, :, None]
    uids = [f"user{k:05d}" for k in range(users)]
    n_jobs = 2 * n_planted + 1
    tmp = Path(tempfile.mkdtemp(prefix="palmgate-split-"))
    procs, socat = [], None
    try:
        provision_dir(tmp, net, mode, capacity=users, inferences=n_jobs, matches=n_jobs,
                      seed=seed.to_bytes(32, "big"), gallery=gallery, uids=uids)
        if transport in ("tcp", "local"):
            peer = [f"tcp:127.0.0.1:{_free_port()}"] * 2
        elif transport == "unix":
            peer = [f"unix:{tmp / 'peer.sock'}"] * 2
        elif transport == "serial":
            if shutil.which("socat") is None:
                raise RuntimeError("serial transport needs socat")
            socat, a, b = _socat_pair(tmp)
            opt = "+pace" if pace else ""
            peer = [f"serial:{a}@{SERIAL_BAUD}{opt}", f"serial:{b}@{SERIAL_BAUD}{opt}"]
        else:
            raise ValueError("transport must be tcp, unix or serial")
        term = [f"tcp:127.0.0.1:{_free_port()}" for _ in (0, 1)]
        ctx = mp.get_context("spawn")
        for role in (0, 1):
            ev = ctx.Event()
            p = ctx.Process(target=_node_proc, args=(role, str(tmp), peer[role], term[role],
                                                     threshold, ev), daemon=True)
            p.start()
            procs.append((p, ev))
        for p, ev in procs:
            if not ev.wait(60):
                raise RuntimeError("node did not start")
        k0, k1 = terminal_keys(tmp)
        t = Terminal(term[0], term[1], k0, k1)
        t.identify(pairs[0][1])                                  # warm-up, not timed
        busiest = []
        lat, rounds, nbytes, ex_lat, ex_rounds, ex_bytes, cos = [], [], [], [], [], [], []
        correct = agree = 0
        for k, (a, b) in enumerate(pairs):
            time.sleep(IDLE_S)
            t0 = time.perf_counter()
            feat, m = t.reveal(b)
            ex_lat.append(1e3 * (time.perf_counter() - t0))
            ex_rounds.append(m["link"]["rounds"])
            ex_bytes.append(m["link"]["bytes"])
            q, qr = query_from_dense(feat).ravel(), ext.query(b).astype(np.float64).ravel()
            cos.append(float(q @ qr / np.linalg.norm(q) / np.linalg.norm(qr)))
            time.sleep(IDLE_S)
            t0 = time.perf_counter()
            r = t.identify(b)
            lat.append(1e3 * (time.perf_counter() - t0))
            rounds.append(r["link"]["rounds"])
            nbytes.append(r["link"]["bytes"])
            busiest.append(max(r["link"]["sent"], r["link"]["received"]))
            correct += int(k < users and r.get("uid") == uids[k])
            qp = ext.query(b).reshape(25, -1).astype(np.float64)
            ps = (qp @ gallery.reshape(users, -1).T).max(0)
            kk = int(ps.argmax())
            agree += int((r.get("uid") == uids[kk]) and (r["accept"] == (ps[kk] >= threshold)))
        t.close()
        for p, _ in procs:
            p.join(10)
        link_bytes = int(np.median(nbytes))
        out = {
            "latency_ms": {"median": float(np.median(lat)), "p95": float(np.percentile(lat, 95))},
            "rounds": int(np.median(rounds)),
            "bytes": link_bytes,
            "cosine_min": float(min(cos)),
            "extract": {"latency_ms": {"median": float(np.median(ex_lat)),
                                       "p95": float(np.percentile(ex_lat, 95))},
                        "rounds": int(np.median(ex_rounds)), "bytes": int(np.median(ex_bytes))},
            "bytes_busier_direction": int(np.median(busiest)),
            "terminal_bytes": 2 * (128 * 128 * 8),
            "users": users, "inferences": n_planted, "transport": transport, "mode": mode,
            "feature": feature, "rank1_correct": correct, "decision_agreement": agree / n_planted,
            "threshold": threshold,
        }
        if transport == "serial":
            out["paced"] = pace
            # full duplex: the busier direction sets the line time
            out["serial_line_s"] = float(np.median(busiest)) * 10 / SERIAL_BAUD
        return out
    finally:
        for p, _ in procs:
            if p.is_alive():
                p.terminate()
        if socat is not None:
            socat.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
