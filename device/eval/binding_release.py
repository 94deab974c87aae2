"""Write the sensor binding's numbers (``models/binding_<sensor>.json``,
:mod:`device.gate.binding_numbers`) and their manifest entry; for the fitting commands
(``python -m device.eval.binding_eval --write-stats`` / ``--write-threshold``), never the gate.

The manifest changes, so its signature no longer verifies: the gate refuses the binding (and
every model) until the release step re-signs it (``python -m tools.sign_manifest --key KEY
models/``, docs/model-signing.md).

Numbers fitted elsewhere (a branch that still generates ``device/gate/binding_stats.py``, a
threshold chosen by hand on validation data, a new term of the score) go in with::

    python -m device.eval.binding_release --sensor nir [--stats-module binding_stats.py] \
        [--max-score 13.9] [--set KEY=JSON ...] [--add] --command "what produced them" \
        --data "on what"
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from device.gate.binding_numbers import FORMAT, numbers_file, parse_numbers
from device.models.model import DEFAULT_MODELS_DIR, read_manifest


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def current_doc(sensor: str, models_dir: Path | str | None = None) -> dict:
    """The file as it is now (not verified: it is about to be rewritten); ``{}`` if none."""
    p = Path(models_dir or DEFAULT_MODELS_DIR) / numbers_file(sensor)
    return json.loads(p.read_text()) if p.is_file() else {}


def write_numbers(sensor: str, updates: dict, *, command: str, data: str,
                  metrics: dict | None = None, notes: str = "",
                  models_dir: Path | str | None = None, add: bool = False) -> dict:
    """Merge ``updates`` (e.g. ``{"probe_ranges": ...}`` or ``{"max_score": ...}``) into
    ``models/binding_<sensor>.json`` (other keys kept), check the result
    (:func:`~device.gate.binding_numbers.parse_numbers`), write it and its manifest entry
    (sha256, bytes, threshold = max_score, command, data, and ``metrics``, which replace the
    entry's old ones: numbers measured with other ranges or another threshold no longer hold).
    With ``add`` (numbers of a further check, the others unchanged) the entry's old metrics,
    command and data are kept and the new ones added. Returns the entry."""
    d = Path(models_dir or DEFAULT_MODELS_DIR)
    name = numbers_file(sensor)
    doc = dict(current_doc(sensor, d), **updates, format=FORMAT, sensor=sensor)
    parse_numbers(doc, sensor, name)                  # refuse to write malformed numbers
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    _atomic_write(d / name, text)
    manifest = read_manifest(d)
    old = manifest["models"].get(name, {})
    if add and old:
        metrics = dict(old.get("metrics", {}), **(metrics or {}))
        command = f"{old.get('command', '')} ; then: {command}"
        data = f"{old.get('data', '')} ; then: {data}"
    entry = {"sha256": hashlib.sha256(text.encode()).hexdigest(), "bytes": len(text.encode()),
             "sensor": sensor, "threshold": doc["max_score"],
             "metrics": metrics or {},
             "command": command, "data": data, "python": sys.version.split()[0],
             "notes": notes or old.get("notes", "")}
    manifest["models"][name] = entry
    _atomic_write(d / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {d / name} and its entry in {d / 'manifest.json'}: the manifest is no "
          f"longer signed -- re-sign it: python -m tools.sign_manifest --key KEY {d} "
          f"(docs/model-signing.md)", file=sys.stderr)
    return entry


def main(argv=None) -> int:
    import argparse
    import importlib.util
    ap = argparse.ArgumentParser(prog="python -m device.eval.binding_release",
                                 description="write numbers into models/binding_<sensor>.json "
                                             "and its manifest entry (re-sign after)")
    ap.add_argument("--sensor", choices=("xray", "nir"), required=True)
    ap.add_argument("--stats-module", default=None,
                    help="a generated binding_stats.py: its STATS[sensor] become probe_ranges")
    ap.add_argument("--max-score", type=float, default=None, help="the binding threshold (mm)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="another per-sensor number (repeatable)")
    ap.add_argument("--command", required=True, help="the command that produced the numbers")
    ap.add_argument("--data", required=True, help="the data they were produced on")
    ap.add_argument("--models", default=None, help="models folder (default: the shipped one)")
    ap.add_argument("--add", action="store_true",
                    help="numbers of a further check (e.g. NIR palm_lines): keep the entry's "
                         "command, data and metrics and add these")
    a = ap.parse_args(argv)
    updates: dict = {}
    if a.stats_module:
        spec = importlib.util.spec_from_file_location("_binding_stats", a.stats_module)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        updates["probe_ranges"] = dict(mod.STATS[a.sensor])
    if a.max_score is not None:
        updates["max_score"] = a.max_score
    for kv in a.set:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise SystemExit(f"--set {kv!r}: expected KEY=JSON")
        updates[k] = json.loads(v)
    if not updates:
        raise SystemExit("nothing to write: give --stats-module, --max-score or --set")
    print(json.dumps(write_numbers(a.sensor, updates, command=a.command, data=a.data,
                                   models_dir=a.models, add=a.add), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
