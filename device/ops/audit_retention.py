"""``[audit] retention_days`` in the running gate: once a day (and at start) the records older
than that are archived into ``[audit] archive_dir`` and removed from the store
(:func:`device.store.audit_archive.prune`), between presentations. A failure is logged and
retried an hour later; it never stops the gate, and nothing is removed that was not archived."""
from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger("palmgate.audit")


def archive_dir(cfg) -> Path:
    """``[audit] archive_dir``, else audit-archive/ beside the store."""
    return Path(cfg.audit.archive_dir) if cfg.audit.archive_dir else \
        Path(cfg.paths.store).parent / "audit-archive"


class DailyRetention:
    def __init__(self, cfg, store, clock=time.time, period_s: float = 86400.0,
                 retry_s: float = 3600.0):
        self.cfg, self.store, self.clock = cfg, store, clock
        self.period_s, self.retry_s = float(period_s), float(retry_s)
        self.next_at = 0.0                      # the first tick runs it
        self.last: dict | None = None

    def tick(self) -> dict | None:
        """Run the prune when it is due; returns its report (None when not due or off)."""
        days = self.cfg.audit.retention_days
        now = self.clock()
        if days <= 0 or now < self.next_at:
            return None
        from device.store.audit_archive import prune
        try:
            rep = prune(self.store, days, archive_dir(self.cfg), now=now,
                        audit={"terminal": self.cfg.gate.terminal,
                               "operator": "palmgate run (retention)"})
        except Exception as e:  # noqa: BLE001 - never stops the gate; retried later
            log.error("audit retention: archive failed, nothing removed: %s", e)
            self.next_at = now + self.retry_s
            return None
        self.next_at = now + self.period_s
        self.last = rep
        if rep["records"]:
            log.info("audit retention: archived records %s-%s to %s", rep["first_seq"],
                     rep["last_seq"], rep["out"],
                     extra={"event": "audit_archive", "records": rep["records"]})
        return rep
