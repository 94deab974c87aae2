"""A learned X-ray phantom detector on validation sets: a measurement only (issue 21;
docs/results.md "A learned X-ray phantom detector"). Nothing here is used by the gate, and
the model is a scratch ONNX file (``tools.train.phantom_net``), never one of models/.

Each presentation's ``sensor.png`` goes through the gate's own capture and SR (the shipped
``sr_xray`` model of ``--precision``, :class:`device.models.sensor_branch.SensorBranch`), then
the detector (onnxruntime, one thread): p(phantom). The rule (written before any validation
number was read): the threshold lets at most 1 of the bona fide of the reference set (seed
9317) beyond it (:func:`device.eval.xray_material.deny_threshold`); the detector is "useful"
where it refuses >= 90 % of the ``skeleton_phantom`` presentations of 9317 and of 23, and
above all those that pass every check but the bone patch. Run::

    python -m device.eval.phantom_detector /tmp/padjoint/margins_xray_9317_int8.json \
        --model /tmp/phnet/run1/phantom.onnx --out scores_9317.json
    python -m device.eval.phantom_detector /tmp/xmat/sets/xray_23 \
        --margins /tmp/xmat/margins_xray_23_phantom_int8.json \
        --model ... --thresholds scores_9317.json --out scores_23.json
"""
from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from device.eval.xray_material import deny_threshold, quantiles, refused_at, set_rows

PHANTOM = "skeleton_phantom"
USEFUL_SHARE = 0.9
"""The rule's bar: the share of the phantoms a useful detector refuses."""


def groups(rows: list) -> dict:
    """Name -> row indices: every class, and the phantoms that matter -- those passing every
    check (``pass_all``), those passing every check but the bone patch
    (``pass_but_identity``) and those the gate opened (``decision``), where the rows carry
    check_margins' values."""
    out: dict[str, list] = {}
    for i, r in enumerate(rows):
        out.setdefault(r["class"], []).append(i)
    ph = [i for i in out.get(PHANTOM, []) if "pass_all" in rows[i]]
    if ph:
        out[PHANTOM + "_pass_but_identity"] = [i for i in ph if rows[i]["pass_but_identity"]]
        out[PHANTOM + "_pass_all"] = [i for i in ph if rows[i]["pass_all"]]
        out[PHANTOM + "_opened"] = [i for i in ph if rows[i].get("decision") == "open"]
    return out


def summarise(rows: list, key: str, threshold: float | None = None) -> dict:
    """Of the scores ``key`` of ``rows``: the threshold (``threshold``, else the one letting
    <= 1 of the bona fide beyond it, and the one letting <= 5), and per group its n, quantiles
    and how many lie beyond each threshold (the bona fide: live hands denied)."""
    bona = np.array([r[key] for r in rows if r["class"] == "bona_fide"], float)
    t1 = threshold if threshold is not None else deny_threshold(bona, "high", 1)
    t5 = deny_threshold(bona, "high", 5) if bona.size else float("nan")
    out = {"deny1": t1, "deny5_own": t5, "groups": {}}
    for g, ix in groups(rows).items():
        v = np.array([rows[i][key] for i in ix], float)
        out["groups"][g] = {"n": len(ix), "q": quantiles(v),
                            "beyond_deny1": refused_at(v, t1, "high"),
                            "beyond_deny5_own": refused_at(v, t5, "high")}
    return out


def useful(summary: dict) -> bool:
    """The rule: the phantoms refused at deny1 are >= :data:`USEFUL_SHARE` of them."""
    g = summary["groups"].get(PHANTOM)
    return bool(g and g["beyond_deny1"] >= USEFUL_SHARE * g["n"])


def pass_flags(row: dict, flags: dict, thresholds: dict | None) -> dict:
    """``pass_all`` / ``pass_but_identity`` / ``decision`` of a set's row by check_margins'
    checks (its row in ``flags`` by folder, or the row itself when it is a check_margins row);
    empty when neither is known."""
    from device.eval.check_margins import passes
    mr = flags.get(row["folder"], row if thresholds is not None and "p_live" in row else None)
    if mr is None:
        return {}
    p = passes(mr, thresholds)
    return {"pass_all": all(p.values()),
            "pass_but_identity": all(v for k, v in p.items() if k != "identity"),
            "decision": mr.get("decision")}


class Detector:
    """SR of the gate (``precision``) + the detector's ONNX file, one thread."""

    def __init__(self, model: str, precision: str = "int8", threads: int = 1):
        import onnxruntime as ort

        from device.models.ort_session import session_options
        from device.models.sensor_branch import SensorBranch
        self.branch = SensorBranch("xray", precision, threads=threads, presence=False)
        so = session_options(threads)
        so.inter_op_num_threads = threads
        self.session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.size = self.session.get_inputs()[0].shape[-1]

    def images(self, frames: list) -> np.ndarray:
        """The detector's inputs: the SR output (256) or the capture (128)."""
        from device.models.sensor_branch import to_capture
        caps = np.stack([to_capture(f) for f in frames])
        return self.branch.super_resolve(caps) if self.size == 256 else caps

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, np.float32)[:, None]
        return self.session.run(None, {self.input: x})[0].reshape(-1)

    def cost_ms(self, image: np.ndarray, runs: int = 200) -> float:
        """Median wall ms of the detector alone on one image (SR excluded: the gate has it)."""
        x = np.asarray(image, np.float32)[None]
        for _ in range(10):
            self(x)
        t = []
        for _ in range(runs):
            t0 = time.perf_counter()
            self(x)
            t.append(time.perf_counter() - t0)
        return float(np.median(t) * 1e3)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", help="check_margins output (.json) or a set folder")
    ap.add_argument("--margins", help="with a set folder: a check_margins output of some of "
                    "its presentations (their pass flags)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--precision", nargs="+", default=["int8", "fp32"])
    ap.add_argument("--thresholds", help="another run's output: its deny1 per precision")
    ap.add_argument("--classes", nargs="*")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    src, th = set_rows(a.source)
    flags = {}
    if a.margins:
        m = json.load(open(a.margins))
        th, flags = m["thresholds"], {r["folder"]: r for r in m["rows"]}
    rows = []
    for r in src:
        if a.classes and r["class"] not in a.classes:
            continue
        rows.append({"class": r["class"], "folder": r["folder"], **pass_flags(r, flags, th)})
    fixed = json.load(open(a.thresholds))["summary"] if a.thresholds else {}
    out = {"source": a.source, "model": a.model, "summary": {}, "rows": rows}
    for prec in a.precision:
        det = Detector(a.model, prec)
        for i in range(0, len(rows), 64):
            frames = [cv2.imread(f"{r['folder']}/sensor.png", cv2.IMREAD_UNCHANGED)
                      for r in rows[i:i + 64]]
            for r, p in zip(rows[i:i + 64], det(det.images(frames))):
                r[f"p_{prec}"] = float(p)
        s = summarise(rows, f"p_{prec}", fixed.get(prec, {}).get("deny1"))
        s["useful"] = useful(s)
        s["cost_ms"] = det.cost_ms(det.images([cv2.imread(
            f"{rows[0]['folder']}/sensor.png", cv2.IMREAD_UNCHANGED)])[0])
        out["summary"][prec] = s
    json.dump(out, open(a.out, "w"), indent=1)
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
