"""One gate of ``palmgate fleet-demo``: its own sealed store and the site sync client, driven by
JSON lines on stdin (the demo's stand-in for the camera), answering JSON lines on stdout.

No camera pipeline runs here (twenty of them do not fit a small machine): the demo hands the
gate plaintext templates to enrol -- rendered presentations through the real pipeline for a
sample of people, random unit cell features for the bulk -- and query features to identify.
Everything after that is the gate's own code: seed-002 protection, the sealed store, the
gallery and the fused 1:N search, the audit chain, the sync client.

    {"op": "enrol", "user": U, "plain": b64 float32, "shape": [n, G, d]}
    {"op": "synth", "seed": S, "first": i, "count": c, "n": 1, "rate": r}
    {"op": "identify", "queries": b64 float32, "shape": [K, S, G, d], "threshold": t}
    {"op": "offline"} | {"op": "online"} | {"op": "report"} | {"op": "quit"}
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

import numpy as np

from device.protect.defaults import DEFAULT_CONFIG
from device.site import provision as P
from device.site.client import GateSync
from device.site.livegallery import changed_users, refresh_users

G, D = 49, 16


def synth_features(seed: int, idx: int, n: int = 1) -> np.ndarray:
    """Random unit cell features (n, G, d) of synthetic user ``idx``."""
    x = np.random.default_rng([seed, idx]).standard_normal((n, G, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _arr(b64: str, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), np.float32).reshape(shape)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.site.gateproc")
    ap.add_argument("--site-dir", required=True)
    ap.add_argument("--gate", required=True)
    ap.add_argument("--work", required=True, help="folder for this gate's store and state")
    a = ap.parse_args(argv)
    from device.recognition.cells import CellExtractor
    from device.store.keys import load_device_key
    from device.store.store import TemplateStore
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    ext = CellExtractor()
    key = load_device_key(work / "device.key", create=True)
    info = P.load_site(a.site_dir)
    holder: list = []
    sync = GateSync(info["site"], a.gate, info["broker"]["host"], info["broker"]["port"],
                    P.tls_files(a.site_dir, a.gate), P.gate_key(a.site_dir, a.gate),
                    bytes.fromhex(info["service_pub"]),
                    lambda: TemplateStore(work / "templates.db", device_key=key),
                    work / "sync.db", DEFAULT_CONFIG, ext.importance, hello_s=2.0,
                    on_applied=lambda results: _follow(holder[0], results))
    holder.append(sync)
    sync.start()

    def say(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    say({"ready": a.gate})
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "quit":
                break
            if op == "enrol":
                eid, v = sync.enrol_local(cmd["user"], _arr(cmd["plain"], cmd["shape"]),
                                          cmd.get("label", "")).result(60)
                say({"op": op, "user": cmd["user"], "enrol_id": eid, "t": time.time()})
            elif op == "synth":
                times, pend = {}, []
                gap = 1.0 / cmd["rate"] if cmd.get("rate") else 0.0
                t_next = time.time()
                for i in range(cmd["first"], cmd["first"] + cmd["count"]):
                    if gap:
                        time.sleep(max(0.0, t_next - time.time()))
                        t_next += gap
                    uid = f"{cmd.get('prefix', 's')}{i:06d}"
                    pend.append((uid, sync.enrol_local(
                        uid, synth_features(cmd["seed"], i, cmd.get("n", 1)))))
                    while pend and pend[0][1].done():
                        u, f = pend.pop(0)
                        f.result()
                        times[u] = time.time()
                for u, f in pend:
                    f.result(120)
                    times[u] = time.time()
                say({"op": op, "times": times})
            elif op == "identify":
                say(dict(op=op, **sync.submit(_identify, ext, _arr(cmd["queries"],
                                                                   cmd["shape"]),
                                              cmd["threshold"]).result(120)))
            elif op == "offline":
                sync.go_offline()
                say({"op": op})
            elif op == "online":
                sync.go_online()
                say({"op": op})
            elif op == "report":
                r = sync.submit(lambda s: s.report()).result(60)
                r["roster_gates"] = len(sync.roster.get("gates") or {})
                up = sorted(_GALLERY.get("updates", []))
                r["gallery_updates"] = {"n": len(up), "p95_s": round(up[int(0.95 * (len(up) -
                                        1))], 4) if up else None,
                                        "max_s": round(up[-1], 4) if up else None}
                r["connected"] = sync.connected.is_set()
                say(dict(op=op, **r))
            else:
                say({"op": op, "error": "unknown op"})
        except Exception as e:      # noqa: BLE001 - reported to the driver, the gate goes on
            say({"error": f"{type(e).__name__}: {e}"})
    sync.stop()
    return 0


_GALLERY: dict = {}


def _follow(s, results) -> None:
    """The sync thread applied ``results``: their users are refreshed in the gallery (once
    built) at the next decision, all at once (device.site.livegallery), instead of the whole
    gallery being rebuilt -- and instead of one pass over a 20,000-template gallery per
    applied batch, which at 10 changes/s on 20 gates sharing 2 cores cost seconds."""
    if "gal" in _GALLERY:
        _GALLERY.setdefault("pending", set()).update(changed_users(results))
        _GALLERY["key"] = s.store.conn.total_changes


def _catch_up(s) -> None:
    pending = _GALLERY.pop("pending", set())
    if pending:
        t0 = time.perf_counter()
        refresh_users(_GALLERY["gal"], s.store, pending, DEFAULT_CONFIG)
        _GALLERY.setdefault("updates", []).append(time.perf_counter() - t0)


def _identify(s, ext, queries, threshold) -> dict:
    """1:N on the gate's own store, as the gate decides: the gallery of its protected
    templates (every enabled user), the K views fused; the matched user's validity window,
    weekly zones and holidays then decide on the gate's clock, as in the gate's pipeline,
    so an out-of-schedule user is denied with its own reason, not as ``no_match``; the
    decision goes into its audit chain."""
    from device.gate.gallery import fused_search, load_gallery
    from device.gate.slot_gallery import GalleryFull, headroom
    from device.store.audit import bucket_score
    from device.store.holidays import holiday_dates
    key = s.store.conn.total_changes          # this connection is the store's only writer
    reload_s = 0.0
    for _ in range(2):
        if _GALLERY.get("key") != key:        # the gate reloads when its store changed
            t0 = time.perf_counter()
            _GALLERY.clear()
            _GALLERY["gal"] = load_gallery(s.store, DEFAULT_CONFIG, ext.importance,
                                           dim=ext.dim, shifts=ext.shifts, storage="float16",
                                           headroom=headroom(s.store.count()["templates"]))[0]
            _GALLERY["key"] = s.store.conn.total_changes
            reload_s = round(time.perf_counter() - t0, 3)
        try:
            _catch_up(s)
            break
        except GalleryFull:                   # no free slot left: loaded again, new headroom
            _GALLERY["key"] = None
        except Exception:
            # the pending users are out of the gallery and off the pending set: the next
            # decision loads it whole, or they would stay out until the gate restarts
            _GALLERY["key"] = None
            raise
    gal = _GALLERY["gal"]
    m = fused_search(gal, queries, threshold)
    opened = bool(m is not None and m.accepted)
    reason = "match" if opened else "no_match"
    if opened:
        u = s.store.get_user(m.owner)
        why = u.access(time.time(), holiday_dates(s.store)) if u is not None else None
        if why is not None:
            opened, reason = False, why
    s.store.audit.append("decision", decision="open" if opened else "deny", reason=reason,
                         user_id=m.owner if m is not None and m.accepted else "",
                         terminal=s.gate,
                         score_bucket=bucket_score(m.score, threshold) if m else "nan")
    _GALLERY["key"] = s.store.conn.total_changes      # an audit record is no gallery change
    return {"opened": opened, "reason": reason, "user": m.owner if m else None,
            "score": None if m is None else m.score, "gallery": len(gal), "reload_s": reload_s}


if __name__ == "__main__":
    raise SystemExit(main())
