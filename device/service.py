"""The wiring of ``palmgate run``: logging, systemd notify, signals, the relay watchdog, the
health/status file, then the gate loop until stopped (SIGTERM/SIGINT finish the presentation and
switch the relay off)."""
from __future__ import annotations

import json
import logging
import os
import signal
import time

from device.gate.gate import Gate
from device.models.model import DEFAULT_MODELS_DIR
from device.ops import health
from device.ops.hardening import harden_process
from device.ops.jsonlog import setup_logging
from device.ops.memory import tune_malloc
from device.ops.sdnotify import SystemdNotifier
from device.ops.watchdog import RelayWatchdog
from device.sources.factory import make_source

log = logging.getLogger("palmgate.gate")


def watchdog_timeout_s(cfg) -> float:
    """Longest a healthy presentation can take: every stage's limit, the cooldown, the capture
    of every view and the sensor frame, and 5 s of slack."""
    return sum(cfg.timeouts.as_dict().values()) / 1000.0 + cfg.gate.cooldown_s \
        + cfg.source.capture_timeout_s * (cfg.gate.views + 1) + 5.0


class StatusReporter:
    """Rewrites the health/status file (``[paths] status_file``) after every decision and door
    event; a failure is logged and never stops the gate."""

    def __init__(self, cfg, gate: Gate, watchdog: RelayWatchdog | None):
        self.cfg, self.gate, self.watchdog = cfg, gate, watchdog
        self.started = time.time()
        self.cache: dict = {}

    def __call__(self) -> None:
        if not self.cfg.paths.status_file:
            return
        g = self.gate
        try:
            st = health.build_status(
                models=health.model_report(self.cfg.paths.models or DEFAULT_MODELS_DIR,
                                           cache=self.cache),
                relay=health.relay_report(g.relay),
                database=health.database_report(
                    self.cfg.paths.store,
                    counter_path=self.cfg.paths.generation_counter or None),
                decisions=health.decisions_report(g.last), watchdog=self.watchdog,
                calibration=g.pipeline.calibration.status(),
                door=g.io.monitor.status() if g.io is not None and g.io.monitor is not None
                else None,
                started_at=self.started,
                extra={"gallery_templates": g.pipeline.gallery_size, "gpio": g.io_status(),
                       "liveness_error": g.pipeline.liveness_error,
                       "panel": g.door.summary() if g.door is not None and g.door.active
                       else None})
            health.write_status(self.cfg.paths.status_file, st)
        except Exception as e:  # noqa: BLE001 - the report never stops the gate
            log.error("status file: %s", e)


def run_gate(cfg, limit: int | None = None, max_faults: int | None = None,
             plain_log: bool = False, source_factory=None) -> int:
    """Run the gate of ``cfg`` until stopped or ``limit`` presentations; returns how many.
    The source is built by ``source_factory(cfg)`` (default: the one ``[source]`` names) once
    the gate has switched its relay off."""
    tune_malloc()
    umask0 = os.umask(0o077)
    hardening = harden_process()        # umask 077, no core dumps, not ptrace-able
    setup_logging("INFO", json_lines=not plain_log, static={"terminal": cfg.gate.terminal})
    log.info("process hardening: %s", hardening, extra={"event": "hardening", **hardening})
    notifier = SystemdNotifier()
    gate = Gate(cfg)
    sync = None
    if cfg.site.enabled:                     # the site sync client, a thread beside the loop
        from device.site.client import start_for_gate
        sync = start_for_gate(cfg, gate)
    old = {s: signal.signal(s, lambda signum, frame: gate.request_stop())
           for s in (signal.SIGTERM, signal.SIGINT)}
    watchdog = None
    try:
        src = (source_factory or make_source)(cfg)
        if gate.relay is not None:           # the relay side of the watchdog
            watchdog = RelayWatchdog(gate.relay, timeout_s=watchdog_timeout_s(cfg),
                                     notifier=notifier, name="palmgate run").start()
        notifier.ready(f"{gate.pipeline.gallery_size} templates")
        report = StatusReporter(cfg, gate, watchdog)
        report()
        from device.ops.audit_retention import DailyRetention
        retention = DailyRetention(cfg, gate.store)     # [audit] retention_days
        retention.tick()
        from device.gate.lookalike_upkeep import upkeep_for_gate
        lists = upkeep_for_gate(gate)       # look-alike lists of people received or older

        def follow_relay():                  # the relay reopened after a fault
            if watchdog is not None and gate.relay is not None:
                watchdog.relay = gate.relay

        def on_event(kind, data):            # door alarms, exit button (GPIO)
            follow_relay()
            report()

        def on_decision(burst, d):
            if not d.idle:
                print(json.dumps(d.summary()), flush=True)
            report()
            follow_relay()
            retention.tick()                 # once a day, between presentations
            if lists is not None:
                lists.tick()                 # ~0.1 s at most, between presentations
            if watchdog is not None:
                watchdog.pet()
            else:
                notifier.watchdog()

        gate.on_event = on_event
        return gate.run(src, limit=limit, on_decision=on_decision, max_faults=max_faults)
    finally:
        if watchdog is not None:
            watchdog.stop()
        if sync is not None:
            sync.stop()
        gate.close()                         # relay off
        for s, h in old.items():
            signal.signal(s, h)
        os.umask(umask0)
        notifier.stopping()
