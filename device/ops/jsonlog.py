"""Structured logs: one JSON object per line.

``setup_logging(level="INFO", json_lines=True)`` installs :class:`JsonFormatter` on a stderr
handler of the root logger (under systemd, stderr goes to the journal; ``journalctl -u palmgate
-o cat | jq`` reads it back). Every record gives ``ts`` (UTC, ISO 8601 with milliseconds),
``level``, ``logger``, ``msg``; ``extra={...}`` fields are added as they are (values that JSON
cannot hold become strings); an exception adds ``exc_type``, ``exc`` and ``traceback``.
"""
from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import datetime, timezone

# attributes every LogRecord has: anything else came in through ``extra=``
_STANDARD = set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """``logging.Formatter`` that writes one JSON object per record, on one line."""

    def __init__(self, static: dict | None = None, with_source: bool = False):
        super().__init__()
        self.static = dict(static or {})
        self.with_source = with_source

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": datetime.fromtimestamp(record.created, timezone.utc)
               .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "level": record.levelname, "logger": record.name,
               "msg": record.getMessage()}
        out.update(self.static)
        if self.with_source:
            out.update(src=f"{record.pathname}:{record.lineno}", func=record.funcName)
        for k, v in vars(record).items():
            if k not in _STANDARD and not k.startswith("_") and k not in out:
                out[k] = v
        if record.exc_info and record.exc_info[0] is not None:
            et, ev, tb = record.exc_info
            out["exc_type"] = et.__name__
            out["exc"] = str(ev)
            out["traceback"] = "".join(traceback.format_exception(et, ev, tb))
        elif record.exc_text:
            out["traceback"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, default=_fallback, ensure_ascii=False, separators=(",", ":"))


def decision_fields(summary: dict) -> dict:
    """A decision's summary as ``extra=`` fields of a log record: at the top level of the JSON
    line (``jq 'select(.decision=="open")'``), renaming any key a LogRecord already has."""
    return {(f"decision_{k}" if k in _STANDARD else k): v for k, v in summary.items()}


def _fallback(v):
    if isinstance(v, (set, frozenset, tuple)):
        return list(v)
    if hasattr(v, "tolist"):                 # numpy scalars and arrays
        return v.tolist()
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def setup_logging(level: str | int = "INFO", json_lines: bool = True, stream=None,
                  static: dict | None = None) -> logging.Handler:
    """Route the root logger to ``stream`` (stderr) as JSON lines (or plain text). Replaces the
    handlers this function installed before; returns the handler."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_palmgate", False):
            root.removeHandler(h)
    h = logging.StreamHandler(stream if stream is not None else sys.stderr)
    h._palmgate = True  # type: ignore[attr-defined]
    h.setFormatter(JsonFormatter(static) if json_lines else
                   logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(h)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return h
