"""The gate's subcommands of ``palmgate``: run, enroll, identify, verify, users, audit, status,
bench (``demo`` stays in device/cli.py). Registered by ``add_gate_commands(sub)``.

Every command takes ``--config FILE`` (the TOML of device/gate/config.py; default: the
built-in defaults). Output: JSON on stdout, progress and human lines on stderr.
"""
from __future__ import annotations

import json
import sys
import time


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cfg(a):
    from device.gate.config import load_config
    return load_config(a.config)


def _store(cfg):
    from device.gate.gate import open_store
    return open_store(cfg)


def _bursts(paths, views):
    from device.gate.burst import ReplaySource
    out = []
    for p in paths:
        src = ReplaySource(p, views=views)
        src.start()
        out += [src.capture_burst() for _ in range(len(src))]
    return out


# ------------------------------------------------------------------ run
def cmd_run(a) -> int:
    """The gate loop until stopped (SIGTERM/SIGINT: finish the presentation, relay off)."""
    import signal

    from device.gate.gate import Gate, make_source
    from device.gate.memory import tune_malloc
    tune_malloc()
    cfg = _cfg(a)
    try:
        from device.ops.jsonlog import setup_logging
        setup_logging("INFO", json_lines=not a.plain_log, static={"terminal": cfg.gate.terminal})
    except ImportError:
        import logging
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    notifier = None
    try:
        from device.ops.sdnotify import SystemdNotifier
        notifier = SystemdNotifier()
    except ImportError:
        pass
    gate = Gate(cfg)

    def stop(signum, frame):
        gate.stop_event.set()
        gate._wake.set()

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    watchdog = None
    try:
        src = make_source(cfg)
        try:                                 # the relay side of the watchdog (device/ops)
            from device.ops.watchdog import RelayWatchdog
            if gate.relay is not None:
                limit_s = sum(cfg.timeouts.as_dict().values()) / 1000.0 + cfg.gate.cooldown_s \
                    + cfg.source.capture_timeout_s * (cfg.gate.views + 1) + 5.0
                watchdog = RelayWatchdog(gate.relay, timeout_s=limit_s, notifier=notifier,
                                         name="palmgate run").start()
        except ImportError:
            pass
        if notifier is not None:
            notifier.ready(f"{len(gate.pipeline.gallery or [])} templates")

        started = time.time()
        health_cache: dict = {}

        def write_health():
            try:
                from device.ops import health
            except ImportError:
                return
            from device.onnx_model import DEFAULT_MODELS_DIR
            try:
                st = health.build_status(
                    models=health.model_report(cfg.paths.models or DEFAULT_MODELS_DIR,
                                               cache=health_cache),
                    relay=health.relay_report(gate.relay),
                    database=health.database_report(cfg.paths.store),
                    decisions=health.decisions_report(gate.last), watchdog=watchdog,
                    door=gate.io.monitor.status() if gate.io is not None
                    and gate.io.monitor is not None else None,
                    started_at=started,
                    extra={"gallery_templates": len(gate.pipeline.gallery or []),
                           "gpio": gate.io_status(),
                           "liveness_error": gate.pipeline.sensor.error
                           if gate.pipeline.sensor else None})
                health.write_status(cfg.paths.status_file, st)
            except Exception as e:  # noqa: BLE001 - the report never stops the gate
                import logging
                logging.getLogger("palmgate.gate").error("status file: %s", e)

        if cfg.paths.status_file:
            write_health()

        def on_event(kind, data):                # door alarms, exit button (GPIO)
            if watchdog is not None and gate.relay is not None:
                watchdog.relay = gate.relay          # reopened by an egress retry
            if cfg.paths.status_file:
                write_health()

        gate.on_event = on_event

        def on_decision(burst, d):
            if not d.idle:
                print(json.dumps(d.summary()), flush=True)
            if cfg.paths.status_file:
                write_health()
            if watchdog is not None:
                if gate.relay is not None:
                    watchdog.relay = gate.relay      # reopened after a relay fault
                watchdog.pet()
            elif notifier is not None:
                notifier.watchdog()

        n = gate.run(src, limit=a.limit, on_decision=on_decision, max_faults=a.max_faults)
        _err(f"palmgate run: {n} presentations")
    finally:
        if watchdog is not None:
            watchdog.stop()
        gate.close()                       # relay off
        for s, h in old.items():
            signal.signal(s, h)
        if notifier is not None:
            notifier.stopping()
    return 0


# ------------------------------------------------------------------ relay-off
def cmd_relay_off(a) -> int:
    """Every configured relay channel and GPIO output off (systemd ExecStopPost=)."""
    from device.ops.jsonlog import setup_logging
    from device.ops.relayoff import relay_off
    cfg = _cfg(a)
    setup_logging("INFO", static={"terminal": cfg.gate.terminal})
    rep = relay_off(cfg, attempts=a.attempts, pause_s=a.pause)
    print(json.dumps(rep))
    return 0 if rep["ok"] else 1


# ------------------------------------------------------------------ enrol / identify / verify
def cmd_enroll(a) -> int:
    from device.gate.enrol import enrol_user
    from device.gate.pipeline import Pipeline
    cfg = _cfg(a)
    if not a.burst and a.synthetic is None:
        raise ValueError("give --burst DIR (recorded bursts) or --synthetic PERSON")
    bursts = _bursts(a.burst or [], cfg.gate.views)
    if a.synthetic is not None:
        from device.gate.synthetic import SyntheticPeople
        people = SyntheticPeople(seed=a.seed, views=cfg.gate.views, sensor=cfg.liveness.sensor)
        bursts += [people.burst(a.synthetic, "enrol", k) for k in range(a.presentations)]
    pipe = Pipeline(cfg)
    try:
        with _store(cfg) as st:
            r = enrol_user(pipe, st, a.user_id, bursts, replace=a.replace, label=a.label)
    finally:
        pipe.close()
    r.pop("rois")
    print(json.dumps(r))
    return 0


def _decide(a, claimed):
    from device.gate.gallery import load_gallery
    from device.gate.pipeline import Pipeline
    cfg = _cfg(a)
    pipe = Pipeline(cfg)
    out = []
    try:
        with _store(cfg) as st:
            pipe.gallery, pipe.versions = load_gallery(
                st, pipe.protect_config, pipe.extractor.importance, when=time.time(),
                shifts=pipe.extractor.shifts, shortlist=cfg.match.shortlist,
                storage=cfg.match.storage)
        for b in _bursts(a.burst, cfg.gate.views):
            d = pipe.decide(b, claimed)
            out.append(d.summary())
            print(json.dumps(d.summary()), flush=True)
    finally:
        pipe.close()
    return 0 if out and all(o["decision"] == "open" for o in out) else 1


def cmd_identify(a) -> int:
    """1:N on recorded bursts, no relay: prints each decision; exit 0 when all matched."""
    return _decide(a, None)


def cmd_verify(a) -> int:
    """1:1 against USER_ID on recorded bursts, no relay."""
    return _decide(a, a.user_id)


# ------------------------------------------------------------------ users
def _user_dict(u, n_templates=None) -> dict:
    d = {"user_id": u.user_id, "enabled": u.enabled, "version": u.version, "label": u.label,
         "valid_from": u.valid_from, "valid_until": u.valid_until, "schedule": u.schedule,
         "active_now": u.active(time.time())}
    if n_templates is not None:
        d["templates"] = n_templates
    return d


def cmd_users(a) -> int:
    cfg = _cfg(a)
    with _store(cfg) as st:
        if a.action == "list":
            for u in st.users():
                print(json.dumps(_user_dict(u)))
            return 0
        if not a.user_id:
            raise ValueError(f"users {a.action} needs a USER_ID")
        if a.action == "show":
            u = st.get_user(a.user_id)
            if u is None:
                raise ValueError(f"no user {a.user_id!r}")
            print(json.dumps(_user_dict(u, len(st.templates(a.user_id))), indent=2))
        elif a.action in ("disable", "enable"):
            u = st.set_enabled(a.user_id, a.action == "enable")
            st.audit.append("user_" + a.action, user_id=a.user_id, terminal=cfg.gate.terminal)
            print(json.dumps(_user_dict(u)))
        elif a.action == "delete" and cfg.split.mode == "split":
            return _delete_split(cfg, st, a.user_id, a.wait)
        elif a.action == "delete":
            n = st.delete_user(a.user_id)
            st.audit.append("user_delete", user_id=a.user_id, terminal=cfg.gate.terminal)
            print(json.dumps({"user_id": a.user_id, "deleted_templates": n}))
    return 0


def _delete_split(cfg, st, user_id: str, wait_s: float) -> int:
    """``users delete`` in split mode: the user's template slots are tombstoned on both
    nodes (and a plaintext record of the same id, if any, deleted from the store). Exit 0
    when both nodes confirmed; 1 when the delete is pending on a node (recorded in the store
    and the audit log; the gate retries it before its next job and denies meanwhile); an
    id that neither node nor the store holds is an error (exit 2)."""
    from device.gate.split_stage import SplitStage
    from device.templates.store import StoreError
    local = None
    if st.get_user(user_id) is not None:
        local = st.delete_user(user_id)
        st.audit.append("user_delete", user_id=user_id, terminal=cfg.gate.terminal)
    stage = SplitStage(cfg)
    stage.store = st
    try:
        r = stage.delete(user_id, wait_s=wait_s)
    finally:
        stage.close()
    if local is not None:
        r["deleted_templates"] = local
    if r["status"] == "unknown":
        if local is not None:
            print(json.dumps(r))
            return 0
        raise StoreError(f"no user {user_id!r}: neither split node holds a template of it "
                         f"(and the store has no record)")
    print(json.dumps(r))
    if r["status"] == "pending":
        _err(f"palmgate users delete: {user_id!r} is NOT yet deleted on node(s) "
             f"{', '.join(map(str, r['pending_nodes']))} ({r.get('error')}); the delete is "
             f"recorded as pending: the gate sends it again before its next job and denies "
             f"every presentation until both nodes have it")
        return 1
    _err(f"palmgate users delete: {user_id!r} deleted on both nodes (slots "
         f"{r.get('slots')} tombstoned)" if r.get("nodes") else
         f"palmgate users delete: {user_id!r} deleted on both nodes by {r.get('applied_by')}")
    return 0


# ------------------------------------------------------------------ audit
def _rec(r) -> dict:
    return {"seq": r.seq, "ts": r.ts,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.ts)), "kind": r.kind,
            **r.payload}


def cmd_audit(a) -> int:
    cfg = _cfg(a)
    with _store(cfg) as st:
        if a.action == "verify-chain":
            try:
                n = st.audit.verify()
            except Exception as e:  # noqa: BLE001 - AuditError names the first bad record
                print(json.dumps({"ok": False, "error": str(e)}))
                return 1
            print(json.dumps({"ok": True, "records": n}))
            return 0
        recs = st.audit.records(since=a.since)
        if a.action == "show":
            for r in recs[-a.last:] if a.last else recs:
                print(json.dumps(_rec(r)))
        else:                                   # export
            if not a.out:
                raise ValueError("audit export needs --out FILE")
            with open(a.out, "w") as f:
                for r in recs:
                    f.write(json.dumps(_rec(r)) + "\n")
            _err(f"exported {len(recs)} audit records to {a.out}")
            print(json.dumps({"records": len(recs), "out": a.out}))
    return 0


# ------------------------------------------------------------------ status
def cmd_status(a) -> int:
    """Models (sha256 against the manifest), store, audit chain, relay configuration."""
    from pathlib import Path

    from device.onnx_model import DEFAULT_MODELS_DIR, ModelError, verified_file
    from device.sensor_branch import model_names
    cfg = _cfg(a)
    models_dir = cfg.paths.models or DEFAULT_MODELS_DIR
    names = ["cells_pca.npz"]
    if cfg.liveness.enabled:
        names += list(model_names(cfg.liveness.sensor, cfg.gate.precision))
    if cfg.gate.segmenter == "net":
        names.append("hand_seg_int8.onnx" if cfg.gate.precision == "int8" else "hand_seg.onnx")
    models, ok = {}, True
    for n in names:
        try:
            _, e = verified_file(n, models_dir)
            models[n] = {"ok": True, "sha256": e["sha256"]}
        except ModelError as e:
            models[n] = {"ok": False, "error": str(e)}
            ok = False
    rep = {"config": cfg.path or "(defaults)", "models_dir": str(models_dir), "models": models,
           "source": cfg.source.kind, "relay": {k: cfg.relay[k] for k in
                                                ("kind", "port", "channel", "pulse_ms")}}
    if Path(cfg.paths.store).exists():
        try:
            with _store(cfg) as st:
                rep["store"] = dict(st.count(), path=cfg.paths.store)
                rep["audit_records"] = st.audit.verify()
                rep["last_decisions"] = [_rec(r) for r in st.audit.records()
                                         if r.kind == "decision"][-a.last:]
        except Exception as e:      # noqa: BLE001
            rep["store"] = {"path": cfg.paths.store, "error": f"{type(e).__name__}: {e}"}
            ok = False
    else:
        rep["store"] = {"path": cfg.paths.store, "error": "not created yet"}
    if cfg.paths.status_file and Path(cfg.paths.status_file).exists():
        try:
            from device.ops.health import read_status
            rep["running_gate"] = read_status(cfg.paths.status_file, max_age_s=a.max_age)
            ok = ok and rep["running_gate"].get("ok", False)
        except Exception as e:      # noqa: BLE001
            rep["running_gate"] = {"error": f"{type(e).__name__}: {e}"}
    rep["ok"] = ok
    print(json.dumps(rep, indent=2))
    return 0 if ok else 1


# ------------------------------------------------------------------ bench
def cmd_bench(a) -> int:
    import os
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from device.gate.bench import bench
    r = bench(users=a.users, views=a.views, precision=a.precision, split=a.split,
              presentations=a.presentations, seed=a.seed, threads=a.threads,
              sensor=a.sensor, models=a.models, feature=a.feature)
    print(json.dumps(r, indent=None if a.json else 2))
    return 0


def add_gate_commands(sub) -> None:
    def config(sp):
        sp.add_argument("--config", default=None, help="gate configuration (TOML); default: "
                        "built-in defaults (device/gate/palmgate.example.toml)")

    sp = sub.add_parser("run", help="run the gate loop (camera/replay/synthetic source -> "
                                    "decision -> relay) until stopped")
    config(sp)
    sp.add_argument("--limit", type=int, default=None, help="stop after N presentations")
    sp.add_argument("--max-faults", type=int, default=None,
                    help="stop after N consecutive capture faults (default: never)")
    sp.add_argument("--plain-log", action="store_true", help="text logs instead of JSON")
    sp.set_defaults(fn=cmd_run)

    sp = sub.add_parser("relay-off", help="switch every relay channel of [relay] (and the "
                                          "[gpio] outputs) off, read back where the board "
                                          "answers; for systemd's ExecStopPost= (runs after "
                                          "the gate exits, even on SIGKILL); exit 1 if not off")
    config(sp)
    sp.add_argument("--attempts", type=int, default=3, help="tries when the line fails")
    sp.add_argument("--pause", type=float, default=1.0, help="seconds between tries")
    sp.set_defaults(fn=cmd_relay_off)

    sp = sub.add_parser("enroll", help="enrol a user from recorded bursts (or a synthetic "
                                       "person) into the sealed store")
    config(sp)
    sp.add_argument("user_id")
    sp.add_argument("--burst", action="append", help="burst folder, or a folder of bursts "
                                                     "(repeatable)")
    sp.add_argument("--synthetic", type=int, default=None, metavar="PERSON",
                    help="render synthetic person PERSON's enrolment presentations instead")
    sp.add_argument("--presentations", type=int, default=2, help="with --synthetic")
    sp.add_argument("--seed", type=int, default=0, help="with --synthetic")
    sp.add_argument("--replace", action="store_true", help="re-enrol (revokes the old "
                                                           "templates)")
    sp.add_argument("--label", default="")
    sp.set_defaults(fn=cmd_enroll)

    for name, fn, hlp in (("identify", cmd_identify, "1:N on recorded bursts (no relay)"),
                          ("verify", cmd_verify, "1:1 against USER_ID on recorded bursts "
                                                 "(no relay)")):
        sp = sub.add_parser(name, help=hlp)
        config(sp)
        if name == "verify":
            sp.add_argument("user_id")
        sp.add_argument("--burst", action="append", required=True)
        sp.set_defaults(fn=fn)

    sp = sub.add_parser("users", help="list / show / disable / enable / delete enrolled users")
    config(sp)
    sp.add_argument("action", choices=["list", "show", "disable", "enable", "delete"])
    sp.add_argument("user_id", nargs="?")
    sp.add_argument("--wait", type=float, default=10.0, metavar="S",
                    help="split mode, delete: when the nodes cannot be reached (a node down, "
                         "or the running gate holds their links), wait up to S seconds for "
                         "the running gate to apply it before reporting it pending")
    sp.set_defaults(fn=cmd_users)

    sp = sub.add_parser("audit", help="show / export / verify-chain of the audit log")
    config(sp)
    sp.add_argument("action", choices=["show", "export", "verify-chain"])
    sp.add_argument("--since", type=int, default=0, help="records after this sequence number")
    sp.add_argument("--last", type=int, default=0, help="show: only the last N")
    sp.add_argument("--out", default=None, help="export: JSON-lines file")
    sp.set_defaults(fn=cmd_audit)

    sp = sub.add_parser("status", help="models (sha256), store, audit chain, relay, last "
                                       "decisions; exit 1 when something is wrong")
    config(sp)
    sp.add_argument("--last", type=int, default=10)
    sp.add_argument("--max-age", type=float, default=120.0, help="a running gate's status "
                    "file older than this (s) counts as a problem")
    sp.set_defaults(fn=cmd_status)

    sp = sub.add_parser("bench", help="presentation-to-relay latency of the real loop (JSON: "
                                      "end_to_end_ms, match_ms, stages_ms, peak_rss_mb)")
    sp.add_argument("--users", type=int, default=10000)
    sp.add_argument("--views", type=int, default=3)
    sp.add_argument("--precision", choices=["int8", "fp32"], default="int8")
    sp.add_argument("--split", action="store_true", help="also time split mode (seed 003)")
    sp.add_argument("--presentations", type=int, default=20)
    sp.add_argument("--sensor", choices=["nir", "xray"], default="nir")
    sp.add_argument("--feature", choices=["cells", "hybrid"], default="cells",
                    help="[match] feature of the gate under test")
    sp.add_argument("--threads", type=int, default=2)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--models", default=None, help="models folder (default: the shipped one)")
    sp.add_argument("--json", action="store_true", help="one line of JSON")
    sp.set_defaults(fn=cmd_bench)
