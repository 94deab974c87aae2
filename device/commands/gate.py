"""`palmgate run | relay-off | relay-test | status | bench`: the gate itself and its relay."""
from __future__ import annotations

import json
import sys

from device.commands.common import add_config, err, load_cfg, open_store, audit_dict


def cmd_run(a) -> int:
    """The gate loop until stopped (SIGTERM/SIGINT: finish the presentation, relay off)."""
    from device.service import run_gate
    cfg = load_cfg(a)
    factory = None
    if cfg.source.kind == "synthetic":            # rendered people: handed in, not built
        from device.synth.source import synthetic_source as factory
    n = run_gate(cfg, limit=a.limit, max_faults=a.max_faults, plain_log=a.plain_log,
                 source_factory=factory)
    if a.plain_log:
        err(f"palmgate run: {n} presentations")
    else:                                   # stderr stays JSON lines (jq reads it whole)
        import logging
        logging.getLogger("palmgate.gate").info("stopped after %d presentations", n,
                                                extra={"event": "stopped",
                                                       "presentations": n})
    return 0


# ------------------------------------------------------------------ relay-off
def cmd_relay_off(a) -> int:
    """Every configured relay channel and GPIO output off (systemd ExecStopPost=)."""
    from device.ops.jsonlog import setup_logging
    from device.ops.relayoff import relay_off
    cfg = load_cfg(a)
    setup_logging("INFO", static={"terminal": cfg.gate.terminal})
    rep = relay_off(cfg, attempts=a.attempts, pause_s=a.pause)
    print(json.dumps(rep))
    return 0 if rep["ok"] else 1


def cmd_relay_test(a) -> int:
    """Pulse the relay once, read it back where the board answers, leave every channel off."""
    from device.ops.relaytest import relay_test
    rep = relay_test(a.protocol, a.port, channel=a.channel, pulse_ms=a.pulse_ms,
                     channels=a.channels, unit=a.unit, coil_base=a.coil_base,
                     baudrate=a.baudrate, timeout=a.timeout, board_pulse=a.board_pulse,
                     flash_base=a.flash_base)
    print(json.dumps(rep, indent=None if a.json else 2))
    if not a.json:
        for c in rep["checks"]:
            print(f"{'PASS' if c['ok'] else 'FAIL'}  {c['check']}"
                  + (f": {c['detail']}" if c.get("detail") else ""), file=sys.stderr)
        if rep.get("note"):
            print(rep["note"], file=sys.stderr)
    return 0 if rep["ok"] else 1


# ------------------------------------------------------------------ status
def _phantom_listed(sensor: str, precision: str, models_dir) -> list[str]:
    """The phantom check's file where the sensor has one and the manifest lists it (the sensor
    stage then needs it, device/models/phantom.py); the signature is status's own check."""
    from device.models.model import ModelError, read_manifest
    from device.models.phantom import listed_phantom, phantom_model_name
    if phantom_model_name(sensor, precision) is None:
        return []
    try:
        name = listed_phantom(sensor, precision, read_manifest(models_dir))
    except ModelError:
        return []
    return [name] if name is not None else []


def _second_look_bands(entry: dict, name: str, liveness) -> dict:
    """The signed second-look band of a liveness / phantom file and the band in force
    (narrowed or switched off by ``[liveness]``; device/gate/second_look.py)."""
    from device.gate.second_look import band_in_force
    from device.models.model import entry_band
    signed = entry_band(entry, name)
    rep = {"second_look_band_signed": signed, "second_look_band": band_in_force(
        signed, bool(liveness.second_look), liveness.second_look_max_band)}
    if rep["second_look_band"] != signed:
        rep["second_look_band_from"] = "config (narrower than the signed one, or off)"
    return rep


def cmd_status(a) -> int:
    """Models (the manifest's signature, sha256, the liveness threshold in force), store, audit
    chain, relay configuration."""
    from pathlib import Path

    from device.models.model import (DEFAULT_MODELS_DIR, ModelError, entry_threshold,
                                     verified_file)
    from device.models.sensor_branch import model_names, signed_threshold, stricter_threshold
    from device.ops.health import signature_report
    cfg = load_cfg(a)
    models_dir = cfg.paths.models or DEFAULT_MODELS_DIR
    names = ["cells_pca.npz"]
    if cfg.liveness.enabled:
        from device.models.presence import presence_model_name
        names.append(presence_model_name(cfg.liveness.sensor, cfg.gate.precision))
        names += list(model_names(cfg.liveness.sensor, cfg.gate.precision))
        names += _phantom_listed(cfg.liveness.sensor, cfg.gate.precision, models_dir)
        if cfg.liveness.binding:                 # the binding's signed numbers
            from device.gate.binding_numbers import numbers_file
            names.append(numbers_file(cfg.liveness.sensor))
    if cfg.gate.segmenter == "net":
        names.append("hand_seg_int8.onnx" if cfg.gate.precision == "int8" else "hand_seg.onnx")
    if cfg.gate.landmarks != "off":
        from device.gate.front_end_stage import landmark_precision
        from device.vision.landmarks import LANDMARK_FILES
        names.append(LANDMARK_FILES[(cfg.gate.landmarks, landmark_precision(cfg))])
    if cfg.match.feature in ("hybrid", "learned"):        # the learned cells and the fusion
        from device.recognition.learned import CELL_MODEL, fusion_file
        names += [CELL_MODEL[cfg.gate.precision], fusion_file(cfg.gate.precision, models_dir)]
    signature = signature_report(models_dir)
    models, ok = {}, signature["ok"]
    binding_doc = None                  # the signed binding file's document, parsed once
    for n in names:
        try:
            _, e = verified_file(n, models_dir)
            models[n] = {"ok": True, "sha256": e["sha256"]}
            if n.startswith(("presence_", "phantom_")):
                # p(hand) above it: a hand on the sensor; p(phantom) above it: not_live
                models[n]["threshold"] = entry_threshold(e, n)
            if n.startswith(("liveness_", "phantom_")):   # the second look's bands
                models[n].update(_second_look_bands(e, n, cfg.liveness))
            if n.startswith("liveness_"):        # the threshold the gate will decide with
                models[n]["threshold"] = signed_threshold(e, n)
                if cfg.liveness.threshold is not None:
                    models[n]["threshold"] = stricter_threshold(
                        cfg.liveness.threshold, models[n]["threshold"], n)
                    models[n]["threshold_from"] = "config (stricter than the signed one)"
            if n.startswith("binding_"):         # the binding threshold in force
                from device.gate.binding_numbers import in_force, load_binding_numbers
                bn = load_binding_numbers(cfg.liveness.sensor, models_dir)
                binding_doc = bn.doc
                f = in_force(bn, cfg.liveness.binding_max_distance,
                             cfg.liveness.binding_min_palm_lines)
                models[n]["threshold"] = f.max_score
                if f.min_agreement is not None:
                    models[n]["min_palm_lines"] = f.min_agreement
                if f.max_score_identified is not None:     # once both identity checks pass
                    models[n]["max_score_identified"] = f.max_score_identified
                if f.from_config:
                    models[n]["threshold_from"] = "config (stricter than the signed one)"
                ok = _hand_size_numbers(models[n], cfg.liveness.sensor, bn.doc) and ok
        except ModelError as e:
            models[n] = {"ok": False, "error": str(e)}
            ok = False
    rep = {"config": cfg.path or "(defaults)", "models_dir": str(models_dir),
           "manifest_signature": signature, "models": models,
           "source": cfg.source.kind, "relay": {k: cfg.relay[k] for k in
                                                ("kind", "port", "channel", "pulse_ms")}}
    if not cfg.liveness.enabled:                 # security checks the configuration turned off
        rep["checks_off"] = ["[liveness] enabled = false: no liveness check and no sensor "
                             "binding (tests of the matcher only)"]
    elif not cfg.liveness.binding:
        rep["checks_off"] = ["[liveness] binding = false: no sensor binding (bring-up only)"]
    from device.gate.sensor_identity import IDENTITY_SENSORS
    from device.gate.sensor_identity_stage import policy_of
    policy = policy_of(cfg.liveness)      # a sensor's default off (X-ray) is not a turning off
    if cfg.liveness.sensor in IDENTITY_SENSORS and (
            cfg.liveness.sensor_identity == "off" or "checks_off" in rep and policy != "off"):
        why = "= off" if policy == "off" else \
            f"= {policy} not applied (it needs the liveness and binding)"
        rep.setdefault("checks_off", []).append(
            f"[liveness] sensor_identity {why}: no sensor identity check")
    if Path(cfg.paths.store).exists():
        try:
            with open_store(cfg) as st:
                rep["store"] = dict(st.count(), path=cfg.paths.store)
                _sensor_templates(rep["store"], st, cfg, policy, binding_doc)
                rep["audit_records"] = st.audit.verify()
                rep["last_decisions"] = [audit_dict(r) for r in st.audit.records()
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


def _sensor_templates(out: dict, st, cfg, policy: str, binding_doc: dict | None = None) -> None:
    """The store's sensor templates by kind; with the identity check on, how many users hold
    only the other sensor's (they open unchecked under when_enrolled: other_sensor) and how
    many hold none (not_enrolled). ``binding_doc``: the signed binding file's document where
    the models' report read it (None: read here)."""
    from device.store import sensor_templates as ST
    kinds = ST.by_kind(st)
    if kinds:
        out["sensor_templates"] = {k: n for k, (n, _) in sorted(kinds.items())}
    if policy != "off" and cfg.liveness.sensor in ST.SENSOR_KIND:
        other = ST.users_of_other_kinds(st, ST.SENSOR_KIND[cfg.liveness.sensor])
        if other:
            out["users_with_other_sensor_templates_only"] = other
        out["users_without_sensor_templates"] = ST.users_without(st)
        unsized, raw = _users_unchecked(st, ST.SENSOR_KIND[cfg.liveness.sensor])
        out["users_without_hand_size"] = unsized
        n = _identity_numbers(cfg, binding_doc)
        if n.get("cohort"):
            out["users_without_cohort_pair"] = raw
        if n.get("lookalikes"):         # enrolled before the lists: palmgate lookalikes --build
            from device.store.lookalike_rows import users_without_list
            out["users_without_lookalike_list"] = users_without_list(
                st, ST.SENSOR_KIND[cfg.liveness.sensor])


def _users_unchecked(st, kind: str) -> tuple[int, int]:
    """(how many users hold sensor templates of ``kind``, none of which carries the hand's
    size -- enrolled before it was kept: the size check skips them, ``not_enrolled`` --, how
    many hold templates of ``kind`` without one cohort pair common to all -- judged on the raw
    agreement, :func:`device.gate.identity_cohort.user_stats`). Unseals every sensor template;
    one that does not read counts for neither (it denies)."""
    from device.gate.identity_cohort import user_stats
    from device.gate.sensor_identity import template_parts
    from device.store import sensor_templates as ST
    sized: dict = {}
    pairs: dict = {}
    for uid, _, k, blob in ST.rows(st):
        if k != kind:
            continue
        try:
            _, z, c = template_parts(blob)
        except ValueError:
            continue
        sized[uid] = sized.get(uid, False) or z is not None
        pairs.setdefault(uid, []).append(c)
    return (sum(1 for v in sized.values() if not v),
            sum(1 for v in pairs.values() if user_stats(v) is None))


def _identity_numbers(cfg, doc: dict | None = None) -> dict:
    """The sensor's signed identity numbers (of the binding file's document ``doc``; None:
    loaded here): ``cohort`` named (NIR), ``lookalikes``; {} where they cannot be read (the
    models' own report says why)."""
    from device.gate.binding_numbers import load_binding_numbers
    from device.gate.sensor_identity import identity_numbers
    try:
        if doc is None:
            doc = load_binding_numbers(cfg.liveness.sensor, cfg.paths.models or None).doc
        return identity_numbers(doc) or {}
    except Exception:     # noqa: BLE001 - ModelError, OSError, ValueError: reported elsewhere
        return {}


def _hand_size_numbers(entry: dict, sensor: str, doc: dict) -> bool:
    """The signed hand-size tolerance in force (``hand_size_max_off``) in the binding's
    status entry (``doc``: the binding file's signed document), or why there is none (the
    size check then denies every sized user); False when the identity numbers are malformed
    (the identity check denies everyone with sensor templates)."""
    from device.gate.sensor_identity import IDENTITY_SENSORS, identity_numbers
    if sensor not in IDENTITY_SENSORS:
        return True
    try:
        si = identity_numbers(doc)
    except ValueError as e:
        entry.update(ok=False, sensor_identity_error=str(e))
        return False
    hs = (si or {}).get("hand_size")
    if hs is None:
        entry["hand_size_max_off"] = None
        entry["hand_size_note"] = ("no signed hand_size numbers: users enrolled with a hand "
                                   "size are denied liveness_unavailable")
    else:
        entry["hand_size_max_off"] = hs["max_off"]
    return True


# ------------------------------------------------------------------ bench
def cmd_bench(a) -> int:
    import os
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from device.eval.bench import bench
    r = bench(users=a.users, views=a.views, precision=a.precision, split=a.split,
              presentations=a.presentations, seed=a.seed, threads=a.threads,
              sensor=a.sensor, models=a.models, feature=a.feature, landmarks=a.landmarks,
              landmark_precision=a.landmark_precision)
    print(json.dumps(r, indent=None if a.json else 2))
    return 0


def register(sub) -> None:
    sp = sub.add_parser("run", help="run the gate loop (camera/replay/synthetic source -> "
                                    "decision -> relay) until stopped")
    add_config(sp)
    sp.add_argument("--limit", type=int, default=None, help="stop after N presentations")
    sp.add_argument("--max-faults", type=int, default=None,
                    help="stop after N consecutive capture faults (default: never)")
    sp.add_argument("--plain-log", action="store_true", help="text logs instead of JSON")
    sp.set_defaults(fn=cmd_run)

    sp = sub.add_parser("relay-off", help="switch every relay channel of [relay] (and the "
                                          "[gpio] outputs) off, read back where the board "
                                          "answers; for systemd's ExecStopPost= (runs after "
                                          "the gate exits, even on SIGKILL); exit 1 if not off")
    add_config(sp)
    sp.add_argument("--attempts", type=int, default=3, help="tries when the line fails")
    sp.add_argument("--pause", type=float, default=1.0, help="seconds between tries")
    sp.set_defaults(fn=cmd_relay_off)
    sp = sub.add_parser("relay-test", help="pulse the turnstile relay once, read it back "
                                           "(Modbus) and leave every channel off; exit 0 when "
                                           "every check passed, 1 otherwise")
    sp.add_argument("--protocol", choices=["lcus", "modbus"], required=True)
    sp.add_argument("--port", required=True, help="serial port (/dev/ttyUSB0, "
                                                  "/dev/serial/by-id/...) or a pyserial URL")
    sp.add_argument("--channel", type=int, default=1, help="relay channel (from 1)")
    sp.add_argument("--pulse-ms", type=int, default=200, help="pulse length (turnstile "
                                                             "controllers need >= 100 ms)")
    sp.add_argument("--channels", type=int, default=None, help="channels on the board "
                                                               "(default: --channel)")
    sp.add_argument("--unit", type=int, default=1, help="Modbus unit id")
    sp.add_argument("--coil-base", type=int, default=0, help="Modbus coil of channel 1")
    sp.add_argument("--baudrate", type=int, default=9600)
    sp.add_argument("--timeout", type=float, default=0.5, help="seconds to wait for an answer")
    sp.add_argument("--board-pulse", action="store_true",
                    help="Modbus: pulse with the board's own timed flash command and check "
                         "that the board ends it by itself ([relay] board_pulse)")
    sp.add_argument("--flash-base", type=lambda v: int(v, 0), default=0x0200,
                    help="Modbus address of the flash command of coil 0 (default 0x0200)")
    sp.add_argument("--json", action="store_true", help="one line of JSON, no summary")
    sp.set_defaults(fn=cmd_relay_test)
    sp = sub.add_parser("status", help="models (sha256), store, audit chain, relay, last "
                                       "decisions; exit 1 when something is wrong")
    add_config(sp)
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
    sp.add_argument("--feature", choices=["cells", "hybrid"], default=None,
                    help="[match] feature of the gate under test (default: the "
                         "configuration's default)")
    sp.add_argument("--landmarks", choices=["full", "lite", "off"], default="full",
                    help="the front end's hand-landmark network ([gate] landmarks)")
    sp.add_argument("--landmark-precision", choices=["gate", "fp32", "int8"], default=None,
                    help="[gate] landmark_precision (default: the configuration's)")
    sp.add_argument("--threads", type=int, default=2)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--models", default=None, help="models folder (default: the shipped one)")
    sp.add_argument("--json", action="store_true", help="one line of JSON")
    sp.set_defaults(fn=cmd_bench)
