"""Write the sensor binding's numbers (``models/binding_<sensor>.json``,
:mod:`device.gate.binding_numbers`) and their manifest entry; for the fitting commands
(``python -m device.eval.binding_eval --write-stats`` / ``--write-threshold``), never the gate.

The manifest changes, so its signature no longer verifies: the gate refuses the binding (and
every model) until the release step re-signs it (``python -m tools.sign_manifest --key KEY
models/``, docs/model-signing.md).
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
                  models_dir: Path | str | None = None) -> dict:
    """Merge ``updates`` (e.g. ``{"probe_ranges": ...}`` or ``{"max_score": ...}``) into
    ``models/binding_<sensor>.json`` (other keys kept), check the result
    (:func:`~device.gate.binding_numbers.parse_numbers`), write it and its manifest entry
    (sha256, bytes, threshold = max_score, command, data, and ``metrics``, which replace the
    entry's old ones: numbers measured with other ranges or another threshold no longer hold).
    Returns the entry."""
    d = Path(models_dir or DEFAULT_MODELS_DIR)
    name = numbers_file(sensor)
    doc = dict(current_doc(sensor, d), **updates, format=FORMAT, sensor=sensor)
    parse_numbers(doc, sensor, name)                  # refuse to write malformed numbers
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    _atomic_write(d / name, text)
    manifest = read_manifest(d)
    old = manifest["models"].get(name, {})
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
