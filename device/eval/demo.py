"""``palmgate demo``: the real gate loop on its embedded default -- no camera, no relay hardware.

1. A sealed template store and device key in a fresh folder.
2. ``people`` synthetic people (device.synth: ONNX generation model + numpy renderers) enrolled
   through the real enrolment path: K views -> palm regions -> cell templates -> protected
   templates -> store.
3. A stream of genuine, impostor (never enrolled) and attack (an enrolled palm's replica with
   an attack species on the transmission sensor) presentations through the real loop:
   quality -> regions -> SR + liveness -> feature -> 1:N -> decision -> audit -> relay.
   The relay is the real LCUS driver over a pseudo-terminal to a byte-exact LCUS board
   simulator (an in-memory relay where the OS has no ptys).
4. Each decision printed with its stage timings; a PNG contact sheet of what the gate saw
   and decided; the audit chain verified.

The match threshold of the demo (``DEMO_THRESHOLD``) is for these synthetic hands: the
classical cell feature separates them far less than real palms (README, "Protected
templates"), so the shipped Tongji-calibrated threshold would reject most of them.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from device.synth.source import DEMO_THRESHOLD


def demo_config(root: Path, views: int = 3, precision: str = "fp32", liveness: bool = True,
                sensor: str = "nir", threshold: float = DEMO_THRESHOLD, relay: dict | None = None,
                models: str | None = None, seed: int = 0):
    from device.config import load_config
    return load_config(None,
                       # a stream of people: each passes before the next presents (the
                       # relay's 200 ms pulse ends first; the gate decides faster than that)
                       gate={"views": views, "precision": precision, "cooldown_s": 0.25,
                             "terminal": "demo-gate"},
                       paths={"store": str(root / "templates.db"),
                              "device_key": str(root / "device.key"),
                              "models": str(models or "")},
                       liveness={"enabled": liveness, "sensor": sensor},
                       # the synthetic gate of this seed: its rig is the sensor's registration
                       source={"kind": "synthetic", "synthetic_seed": seed},
                       match={"threshold": threshold}, relay=relay or {"kind": "sim"})


def shipped_sensor(precision: str = "fp32", models: str | None = None) -> str:
    """NIR when its SR and liveness models are listed in the manifest, else X-ray when those
    are, else NIR (the gate then denies every presentation: liveness_unavailable)."""
    from device.models.model import DEFAULT_MODELS_DIR, load_manifest
    from device.models.sensor_branch import model_names
    try:
        listed = load_manifest(models or DEFAULT_MODELS_DIR).get("models", {})
    except Exception:        # noqa: BLE001 - a broken manifest is reported by the gate
        return "nir"
    for s in ("nir", "xray"):
        if all(n in listed for n in model_names(s, precision)):
            return s
    return "nir"


def _print(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_demo(people: int = 4, per_kind: int = 3, seed: int = 0, out: str | None = None,
             views: int = 3, precision: str | None = None, models: str | None = None,
             sensor: str | None = None, log=_print, panel: str | None = None) -> dict:
    """``precision``: None for the gate's default (``[gate] precision``, int8), as ``palmgate
    run`` decides. ``panel``: None, or ``"osdp"``/``"wiegand"`` (device.eval.panel_demo): the
    summary then has a ``panel`` object."""
    if precision is None:
        from device.config import load_config
        precision = load_config(None).gate.precision
    root = Path(out) if out else Path(tempfile.mkdtemp(prefix="palmgate-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    sensor = sensor or shipped_sensor(precision, models)
    cfg = demo_config(root, views, precision, sensor=sensor, models=models, seed=seed)
    dp = None
    if panel:                                   # the gate as an access panel's reader
        from device.eval.panel_demo import DemoPanel
        dp = DemoPanel(panel, root)
        cfg = cfg.replace(**dp.sections())
    try:
        return _run(cfg, root, people, per_kind, seed, views, precision, sensor, log, dp)
    finally:
        if dp is not None:
            dp.close()


def _run(cfg, root, people, per_kind, seed, views, precision, sensor, log, dp) -> dict:
    from device.gate.enrol import enrol_user
    from device.gate.enrol_capture import PRESENTATIONS
    from device.gate.gate import Gate
    from device.gate.pipeline import Pipeline
    from device.eval.sheet import contact_sheet
    from device.synth.source import SyntheticPeople, SyntheticSource, demo_schedule
    pipe = Pipeline(cfg)
    notes = []
    if pipe.sensor is not None and pipe.sensor.load() is None:
        notes.append(f"liveness models unavailable ({pipe.sensor.error}): every presentation "
                     f"is denied with reason liveness_unavailable, as the gate would")
        log("demo: " + notes[-1])
    synth = SyntheticPeople(seed=seed, views=views, sensor=cfg.liveness.sensor)
    panel_summary = None
    with Gate(cfg, pipeline=pipe, pin_factory=dp.pin_factory if dp else None) as gate:
        log(f"demo: {sensor} sensor, {precision} models; store {cfg.paths.store}; relay: "
            f"{getattr(gate.relay, 'driver_name', None) or type(gate.relay).__name__} on "
            f"{getattr(gate.relay, 'port', '?')}"
            + (" (LCUS board simulator on a pty)" if gate.relay_sim else ""))
        for i in range(people):
            t0 = time.time()
            r = enrol_user(pipe, gate.store, f"person-{i:03d}",      # as the product enrols
                           [synth.burst(i, "enrol", n) for n in range(PRESENTATIONS)])
            log(f"demo: enrolled person-{i:03d} ({r['templates']} protected templates) "
                f"[{i + 1}/{people}] {time.time() - t0:.1f} s")
            if dp is not None:
                dp.enrolled(gate.store, f"person-{i:03d}", i)
        gate.reload()
        if dp is not None:
            log(f"demo: {dp.kind} panel " + ("up, Secure Channel active" if dp.start(gate)
                                              else "up, NO Secure Channel"))
        schedule = demo_schedule(people, per_kind, per_kind, seed)
        src = SyntheticSource(synth, schedule)
        rows, results = [], []

        def show(burst, d):
            label = burst.meta.get("label", "?") if burst is not None else "fault"
            who = burst.meta.get("person", "") if burst is not None else ""
            extra = f" ({burst.meta['species']})" if burst is not None and \
                burst.meta.get("species") else ""
            st = " ".join(f"{k} {v:.0f}" for k, v in d.stages_ms.items())
            log(f"[{len(rows) + 1:2d}/{len(schedule)}] {label:8s} {who}{extra}: "
                f"{d.decision.upper():4s} {d.reason}"
                + (f" -> {d.user_id}" if d.user_id else "")
                + (f" score {d.score:.4f}" if d.score is not None else "")
                + (f" p(live) {d.p_live:.2f}" if d.p_live is not None else "")
                + (f" binding {d.binding:.3f}" if d.binding is not None else "")
                + f" | {d.total_ms:.0f} ms ({st})")
            rows.append((burst, d, label))
            s = d.debug()                   # synthetic people: the scores are the point
            s.update(label=label, person=who)
            results.append(s)

        gate.run(src, on_decision=show)
        time.sleep(cfg.relay.pulse_ms / 1000.0 + 0.1)        # let the last pulse end
        relay_frames = None
        if gate.relay_sim is not None:
            relay_frames = {"frames": len(gate.relay_sim.frames),
                            "pulses": gate.relay_sim.pulses(cfg.relay.channel),
                            "relay_on_now": bool(gate.relay_sim.state.get(cfg.relay.channel))}
        if dp is not None:
            panel_summary = dp.summary([r["user_id"] for r in results
                                        if r["decision"] == "open"])
        chain = gate.store.audit.verify()
    sheet = contact_sheet(rows, root / "demo_sheet.png", views)
    summary = {}
    for r in results:
        k = r["label"]
        e = summary.setdefault(k, {"n": 0, "open": 0})
        e["n"] += 1
        e["open"] += r["decision"] == "open"
    correct = sum(1 for r in results if (r["label"] == "genuine") == (r["decision"] == "open")
                  and (r["label"] != "genuine" or r["user_id"] == r["person"]))
    log(f"demo: contact sheet {sheet}")
    return {"out": str(root), "contact_sheet": sheet, "people": people,
            "presentations": len(results), "correct_decisions": correct,
            "enrol_presentations": PRESENTATIONS,
            "by_label": summary, "relay": relay_frames, "audit_records": chain,
            "threshold": cfg.match.threshold, "sensor": sensor, "precision": precision,
            "notes": notes, **({"panel": panel_summary} if dp is not None else {})}


if __name__ == "__main__":
    print(json.dumps(run_demo(), indent=2))
