"""The health/status report: models with their sha256 against models/manifest.json and the
manifest's signature, cameras,
relay, database, disk, watchdog, door and the last decisions, as one JSON-ready dict.

Each part is a function of plain inputs (the manifest dict and the files' hashes, an object's
``describe()``, a list of decision dicts), so it is tested without hardware; ``build_status``
puts the parts together with an overall ``ok`` and a list of ``problems`` in words. The running
gate writes it atomically to a file (``write_status``; the systemd unit's RuntimeDirectory
``/run/palmgate/status.json``) that ``read_status`` (a ``palmgate status`` command, a monitoring
script) reads without disturbing the loop.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

from device.models.model import (DEFAULT_MODELS_DIR, SIGNATURE_FILE, ModelError,
                                 load_signed_manifest, sha256_file)

STATUS_FORMAT = "palmgate-status/1"
# never the score or p(live): the status file is readable by the palmgate group, and exact
# scores are a hill-climbing oracle
DECISION_FIELDS = ("at", "time", "decision", "outcome", "reason", "user_id", "claimed_id",
                   "liveness", "total_ms", "stages_ms", "relay", "presentation_id")
STATUS_MODE = 0o640              # owner and the palmgate group (palmgate status), no one else
MIN_FREE_BYTES = 200 * 1024 * 1024


# -- models ------------------------------------------------------------------------------------
def file_hashes(models_dir: str | os.PathLike, names: Iterable[str],
                cache: dict | None = None) -> dict[str, str | None]:
    """sha256 of each listed file (None when missing). ``cache`` (a dict the caller keeps)
    skips files whose size and mtime did not change since the last call."""
    out: dict[str, str | None] = {}
    for name in names:
        p = Path(models_dir) / name
        try:
            st = p.stat()
        except OSError:
            out[name] = None
            continue
        key = (str(p), st.st_size, st.st_mtime_ns)
        if cache is not None and key in cache:
            out[name] = cache[key]
            continue
        h = sha256_file(p)
        if cache is not None:
            cache[key] = h
        out[name] = h
    return out


def check_models(manifest: Mapping, hashes: Mapping[str, str | None],
                 loaded: Mapping[str, str] | None = None) -> dict:
    """Pure: each manifest entry against the file's hash. ``loaded``: name -> sha256 the gate
    verified when it loaded the model (a file changed on disk after loading shows up here)."""
    models, problems = [], []
    for name, entry in sorted((manifest.get("models") or {}).items()):
        want = entry.get("sha256")
        have = hashes.get(name)
        m = {"name": name, "sha256": want, "file_sha256": have, "present": have is not None,
             "match": have is not None and have == want, "bytes": entry.get("bytes")}
        if loaded is not None:
            m["loaded"] = name in loaded
            if name in loaded:
                m["loaded_sha256"] = loaded[name]
                if loaded[name] != have:
                    problems.append(f"model {name}: the file changed after it was loaded")
        if have is None:
            problems.append(f"model {name}: file missing")
        elif have != want:
            problems.append(f"model {name}: sha256 does not match the manifest")
        models.append(m)
    return {"models": models, "ok": not problems, "problems": problems}


def model_report(models_dir: str | os.PathLike = DEFAULT_MODELS_DIR,
                 loaded: Mapping[str, str] | None = None, cache: dict | None = None) -> dict:
    path = Path(models_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return {"manifest": str(path), "models": [], "ok": False,
                "problems": [f"model manifest {path}: {e}"]}
    names = list((manifest.get("models") or {}).keys())
    rep = check_models(manifest, file_hashes(models_dir, names, cache), loaded)
    rep["manifest"] = str(path)
    rep["signature"] = signature_report(models_dir, cache)
    if not rep["signature"]["ok"]:
        rep["problems"].insert(0, f"model manifest signature: {rep['signature']['error']}")
        rep["ok"] = False
    return rep


def signature_report(models_dir: str | os.PathLike = DEFAULT_MODELS_DIR,
                     cache: dict | None = None) -> dict:
    """``{"ok": True, "key_id": ...}`` when the manifest's signature verifies with the trusted
    keys, else ``{"ok": False, "error": ...}``. ``cache`` skips the check while neither file
    changed (size and mtime)."""
    d = Path(models_dir)

    def stamp(p: Path):
        try:
            st = p.stat()
            return st.st_size, st.st_mtime_ns
        except OSError:
            return None

    key = ("signature", str(d), stamp(d / "manifest.json"), stamp(d / SIGNATURE_FILE))
    if cache is not None and key in cache:
        return dict(cache[key])
    try:
        rep = {"ok": True, "key_id": load_signed_manifest(d)[1]}
    except ModelError as e:
        rep = {"ok": False, "error": str(e)}
    if cache is not None:
        cache[key] = rep
    return dict(rep)


# -- devices -----------------------------------------------------------------------------------
def describe(obj) -> dict:
    """``obj.describe()`` when it has one, else its class name."""
    if obj is None:
        return {"configured": False}
    d = getattr(obj, "describe", None)
    if callable(d):
        try:
            return dict(d())
        except Exception as e:
            return {"kind": type(obj).__name__, "error": f"{type(e).__name__}: {e}"}
    return {"kind": type(obj).__name__}


def camera_report(cameras: Mapping[str, Any] | Iterable[Any] | None,
                  last_frame_at: Mapping[str, float] | None = None,
                  now: float | None = None, stale_s: float = 10.0) -> dict:
    """Cameras by name with ``describe()`` and the age of their last frame (monotonic clock)."""
    if cameras is None:
        return {"cameras": {}, "ok": True, "problems": []}
    items = cameras.items() if isinstance(cameras, Mapping) else (
        (getattr(c, "name", f"camera{i}"), c) for i, c in enumerate(cameras))
    now = time.monotonic() if now is None else now
    out, problems = {}, []
    for name, cam in items:
        d = describe(cam)
        t = (last_frame_at or {}).get(name)
        d["last_frame_age_s"] = None if t is None else round(now - t, 3)
        if d.get("running") is False:
            problems.append(f"camera {name}: not running")
        elif t is not None and now - t > stale_s:
            problems.append(f"camera {name}: no frame for {now - t:.0f} s")
        if d.get("error"):
            problems.append(f"camera {name}: {d['error']}")
        out[str(name)] = d
    return {"cameras": out, "ok": not problems, "problems": problems}


def relay_report(relay) -> dict:
    """Driver, port, channels, last commanded states and errors of a relay driver."""
    if relay is None:
        return {"configured": False, "ok": False, "problems": ["relay: not configured"]}
    if hasattr(relay, "describe") and hasattr(relay, "connected"):   # RelaySupervisor
        d = relay.describe()
        states = {str(k): v for k, v in relay.states.items()}
        problems = []
        if relay.closed:
            problems.append("relay: closed")
        elif not d["connected"]:
            problems.append(f"relay: line down for {d['down_s']} s, reconnecting "
                            f"({d['fault']})")
        errors = list(relay.errors)
        return {"driver": d["driver"], "port": d["port"], "channels": d["channels"],
                "states": states, "closed": relay.closed, "connected": d["connected"],
                "faults": d["faults"], "recoveries": d["recoveries"], "errors": len(errors),
                "last_error": str(errors[-1]) if errors else None,
                "ok": not problems, "problems": problems}
    errors = list(getattr(relay, "errors", []) or [])
    closed = bool(getattr(relay, "_closed", getattr(relay, "closed", False)))
    states = {str(k): v for k, v in (getattr(relay, "states", {}) or {}).items()}
    problems = []
    if closed:
        problems.append("relay: closed")
    if errors:
        problems.append(f"relay: {len(errors)} error(s), last: {errors[-1]}")
    return {"driver": type(relay).__name__, "port": getattr(relay, "port", None),
            "channels": getattr(relay, "channels", None), "states": states, "closed": closed,
            "errors": len(errors), "last_error": str(errors[-1]) if errors else None,
            "ok": not problems, "problems": problems}


def database_report(path: str | os.PathLike | None, users: int | None = None,
                    min_free_bytes: int = MIN_FREE_BYTES, counter_path=None) -> dict:
    """Template store file, its WAL and generation counter (sizes by ``stat`` only: nothing
    here opens the database file), and the free space where it lives."""
    if path is None:
        return {"configured": False, "ok": True, "problems": []}
    p = Path(path)
    problems = []

    def size(q: Path):
        try:
            return q.stat().st_size
        except OSError:
            return None

    d = {"path": str(p), "exists": p.exists(), "bytes": size(p),
         "wal_bytes": size(p.with_name(p.name + "-wal")),
         "generation_counter": (Path(counter_path) if counter_path else
                                p.with_name(p.name + ".generation")).exists(),
         "users": users}
    if not d["exists"]:
        problems.append(f"database {p}: missing")
    try:
        du = shutil.disk_usage(p.parent if p.parent.exists() else Path("/"))
        d["free_bytes"] = du.free
        if du.free < min_free_bytes:
            problems.append(f"disk: {du.free // (1024 * 1024)} MiB free where the database "
                            f"lives (under {min_free_bytes // (1024 * 1024)} MiB)")
    except OSError as e:
        problems.append(f"disk: {e}")
    d.update(ok=not problems, problems=problems)
    return d


def decisions_report(decisions: Iterable[Mapping] | None, last: int = 10) -> dict:
    """Counts by outcome and the last ``last`` decisions, keeping only plain fields (ids,
    outcome, reason, scores, timings; never images or features)."""
    ds = list(decisions or [])
    key = "decision" if any("decision" in d for d in ds) else "outcome"
    counts = Counter(str(d.get(key, "unknown")) for d in ds)
    reasons = Counter(str(d["reason"]) for d in ds if d.get("reason"))
    keep = [{k: d[k] for k in DECISION_FIELDS if k in d} for d in ds[-last:]]
    return {"total": len(ds), "by_outcome": dict(counts), "by_reason": dict(reasons),
            "last": keep}


# -- the whole report --------------------------------------------------------------------------
def build_status(*, models: Mapping | None = None, cameras: Mapping | None = None,
                 relay: Mapping | None = None, database: Mapping | None = None,
                 decisions: Mapping | None = None, watchdog=None, door: Mapping | None = None,
                 started_at: float | None = None, now: float | None = None,
                 version: str | None = None, extra: Mapping | None = None,
                 calibration: Mapping | None = None) -> dict:
    """Join the parts (each the output of the functions above, or None when not part of this
    gate) into one report with ``ok`` and ``problems``. ``calibration``: the pipeline's
    ``CalibrationStage.status()`` (running uncalibrated is a problem)."""
    if version is None:
        from device import __version__ as version
    now = time.time() if now is None else now
    parts = {"models": models, "cameras": cameras, "relay": relay, "database": database,
             "calibration": calibration}
    problems: list[str] = []
    for part in parts.values():
        if part:
            problems += list(part.get("problems", []))
    wd = describe(watchdog) if watchdog is not None and not isinstance(watchdog, Mapping) \
        else watchdog
    if wd and wd.get("tripped"):
        problems.append("watchdog: tripped (the loop stopped petting it; relay forced off)")
    if door and door.get("alarm"):
        problems.append(f"door: {door['alarm']}")
    out = {"format": STATUS_FORMAT, "version": version, "time": now,
           "uptime_s": None if started_at is None else round(now - started_at, 1),
           "pid": os.getpid(), "ok": not problems, "problems": problems}
    for k, v in parts.items():
        if v is not None:
            out[k] = v
    if decisions is not None:
        out["decisions"] = decisions
    if wd is not None:
        out["watchdog"] = wd
    if door is not None:
        out["door"] = door
    if extra:
        out.update(extra)
    return out


def write_status(path: str | os.PathLike, status: Mapping) -> None:
    """Write atomically (temp file + rename in the same folder): a reader never sees half."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".status-", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(status, f, indent=1, default=str)
            f.write("\n")
        os.chmod(tmp, STATUS_MODE)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_status(path: str | os.PathLike, max_age_s: float | None = None) -> dict:
    """The last written report; with ``max_age_s`` a stale one gets ``ok`` False and a
    problem (the gate stopped writing)."""
    st = json.loads(Path(path).read_text())
    if max_age_s is not None and time.time() - float(st.get("time", 0)) > max_age_s:
        st = dict(st)
        st["ok"] = False
        st["problems"] = list(st.get("problems", [])) + [
            f"status is {time.time() - float(st.get('time', 0)):.0f} s old: is the gate "
            f"running?"]
    return st
