"""``palmgate review``: online hard-example retraining of the liveness model (seed 001,
claim 9 / steps 305-306): keep the presentations a reviewer labels as misclassified in the
liveness layout, ready for ``python -m tools.train liveness --retrain-from OUT``.

The reviewer's labels come either from the folder itself (``DIR/bona_fide/**`` and
``DIR/attack/<species>/**``, e.g. presentations sorted by hand) or from ``--labels FILE``: a CSV
with a header ``file,label[,species]`` (``file`` relative to DIR; ``label`` ``bona_fide``/
``live``/``1`` or ``attack``/``non_live``/``0``) or a JSON object ``{file: label}``.  The label
is taken as correct (seed 001 §3.8).  Every presentation goes through the shipped sensor branch;
those whose decision disagrees with the label are copied -- the raw frame, byte for byte, named
by its content hash so a frame is kept once -- to ``OUT/bona_fide/`` or
``OUT/attack/<species>/``; correctly classified ones are not kept.  OUT/review.json records every
decision (appended across runs).

The raw frame rather than the SR image is kept: retraining runs the same frozen SR model on it,
which gives the SR image that hard-example retraining (claim 9) may train on, and the raw
layout is what ``evaluate-liveness`` reads.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import time
from pathlib import Path


LIVE_WORDS = {"bona_fide", "bona-fide", "live", "1", "true", "genuine"}
ATTACK_WORDS = {"attack", "non_live", "non-live", "fake", "0", "false", "spoof"}


def _parse_label(label: str, species: str | None) -> tuple[bool, str]:
    v = str(label).strip().lower()
    if v in LIVE_WORDS:
        return True, "bona_fide"
    if v in ATTACK_WORDS:
        return False, (species or "reviewed").strip() or "reviewed"
    # any other word names an attack species
    return False, v


def read_labels(data_dir: Path, labels_file: Path | None) -> list[tuple[Path, bool, str]]:
    """[(file, live, class)] of the presentations to review."""
    from device.eval.liveness import scan_liveness_dir

    if labels_file is None:
        bona, attacks = scan_liveness_dir(data_dir)
        return [(f, True, "bona_fide") for f in bona] + [
            (f, False, sp) for sp, fs in attacks.items() for f in fs]
    labels_file = Path(labels_file)
    rows = []
    if labels_file.suffix.lower() == ".json":
        for f, lab in json.loads(labels_file.read_text()).items():
            rows.append((data_dir / f, *_parse_label(lab, None)))
    else:
        with open(labels_file, newline="") as fh:
            for r in csv.DictReader(fh):
                if "file" not in r or "label" not in r:
                    raise ValueError(f"{labels_file}: need columns file,label[,species]")
                rows.append((data_dir / r["file"], *_parse_label(r["label"], r.get("species"))))
    missing = [str(f) for f, _, _ in rows if not f.exists()]
    if missing:
        raise FileNotFoundError(f"labelled files not found: {missing[:5]}")
    return rows


def review(data_dir, sensor: str, out_dir, labels_file=None, precision: str = "fp32",
           models_dir=None, threads: int = 0) -> dict:
    from device.eval.liveness import read_grey
    from device.models.model import DEFAULT_MODELS_DIR
    from device.models.sensor_branch import SensorBranch

    data_dir, out = Path(data_dir), Path(out_dir)
    rows = read_labels(data_dir, labels_file)
    if not rows:
        raise ValueError(f"nothing to review in {data_dir}")
    branch = SensorBranch(sensor, precision, models_dir or DEFAULT_MODELS_DIR, threads)
    entries, kept = [], {}
    for i in range(0, len(rows), 64):
        chunk = rows[i:i + 64]
        p, _ = branch.scores([read_grey(f) for f, _, _ in chunk])
        for (f, live, cls), pl in zip(chunk, p):
            decision = bool(pl > branch.threshold)
            e = {"file": str(f), "label": "bona_fide" if live else "attack", "class": cls,
                 "p_live": float(pl), "decision": "live" if decision else "non_live",
                 "misclassified": decision != live}
            if decision != live:
                data = f.read_bytes()
                name = hashlib.sha1(data).hexdigest()[:16] + f.suffix.lower()
                dst = out / ("bona_fide" if live else f"attack/{cls}") / name
                dst.parent.mkdir(parents=True, exist_ok=True)
                if not dst.exists():
                    shutil.copyfile(f, dst)
                e["stored"] = str(dst.relative_to(out))
                kept[cls] = kept.get(cls, 0) + 1
            entries.append(e)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "review.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {
        "sensor": sensor, "runs": []}
    if meta.get("sensor") != sensor:
        raise ValueError(f"{out} holds reviewed presentations of sensor {meta.get('sensor')!r}")
    run = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "data": str(data_dir),
           "precision": precision, "threshold": branch.threshold,
           "liveness_model": branch.liveness_model.path.name,
           "liveness_sha256": branch.liveness_model.entry["sha256"],
           "reviewed": len(entries), "misclassified": int(sum(e["misclassified"]
                                                                for e in entries)),
           "kept_by_class": kept, "entries": entries}
    meta["runs"].append(run)
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    n_live = sum(1 for _, live, _ in rows if live)
    return {"sensor": sensor, "out": str(out), "reviewed": len(entries),
            "bona_fide": n_live, "attacks": len(rows) - n_live,
            "misclassified": run["misclassified"], "kept_by_class": kept,
            "threshold": branch.threshold,
            "p_live_of_kept": [round(e["p_live"], 4) for e in entries if e["misclassified"]][:50]}
