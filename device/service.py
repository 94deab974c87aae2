"""The wiring of ``palmgate run``: logging, systemd notify, signals, the relay watchdog, the
health/status file, then the gate loop until stopped (SIGTERM/SIGINT finish the presentation and
switch the relay off)."""
from __future__ import annotations

import json
import signal
import sys
import time

from device.gate.gate import Gate, make_source
from device.ops.memory import tune_malloc


def run_gate(cfg, limit: int | None = None, max_faults: int | None = None,
             plain_log: bool = False) -> int:
    """Run the gate of ``cfg`` until stopped or ``limit`` presentations; returns how many."""
    tune_malloc()
    try:
        from device.ops.jsonlog import setup_logging
        setup_logging("INFO", json_lines=not plain_log, static={"terminal": cfg.gate.terminal})
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
            from device.models.model import DEFAULT_MODELS_DIR
            try:
                st = health.build_status(
                    models=health.model_report(cfg.paths.models or DEFAULT_MODELS_DIR,
                                               cache=health_cache),
                    relay=health.relay_report(gate.relay),
                    database=health.database_report(
                        cfg.paths.store, counter_path=cfg.paths.generation_counter or None),
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

        n = gate.run(src, limit=limit, on_decision=on_decision, max_faults=max_faults)
    finally:
        if watchdog is not None:
            watchdog.stop()
        gate.close()                       # relay off
        for s, h in old.items():
            signal.signal(s, h)
        if notifier is not None:
            notifier.stopping()
    return n
