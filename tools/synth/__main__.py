"""``python -m tools.synth <command>``: deterministic synthetic data sets (seed 004).

  palms     palm ROI identities            --out DIR --subjects N --sessions 2 --samples M --seed S
  hands     full hands seen by K views     --out DIR --subjects N --sessions 2 --samples M --views K --seed S
  liveness  bona fide + attack species     --sensor xray|nir --out DIR --bona-fide N --per-species M --seed S
            (--presentations: bona fide + mixed presentations, views + sensor frame, [--views K];
             --attack-species: every attack species of the sensor as presentations too)
  sr-pairs  super-resolution pairs         --sensor xray|nir --out DIR --n N --seed S
  pairs     matched live/attack pairs      --sensor xray|nir --species SP --out DIR --n N --seed S
  sheet     contact sheet of any set       SRC --out FILE.png
  check     identity separation and image statistics of a palms set against real ROIs
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from device.synth.bound import NIR_WORLDS, use_nir_world
from device.synth.placement import PLACEMENTS


def _progress(label: str):
    t0 = time.time()

    def report(done: int, total: int) -> None:
        if done == total or done % max(1, total // 20) == 0:
            rate = done / max(time.time() - t0, 1e-9)
            eta = (total - done) / max(rate, 1e-9)
            print(f"\r{label}: {done}/{total} ({rate:.1f}/s, {eta:.0f}s left)", end="",
                  file=sys.stderr, flush=True)
            if done == total:
                print(file=sys.stderr)
    return report


def _synth(a):
    from device.synth.palms import PalmSynthesizer
    return PalmSynthesizer(threads=a.threads)


def cmd_palms(a) -> dict:
    from device.synth.palm_sets import write_palms
    write_palms(Path(a.out), a.subjects, a.sessions, a.samples, a.seed, _synth(a),
                _progress("palms"))
    return {"out": a.out, "subjects": a.subjects, "images": a.subjects * a.sessions * a.samples}


def cmd_hands(a) -> dict:
    from device.synth.hand_textures import palm_texture_fn
    from device.synth.sensor_sets import write_hands
    return write_hands(Path(a.out), a.subjects, a.sessions, a.samples, a.views, a.seed,
                       palm_texture_fn(_synth(a), a.seed), mode=a.mode)


def cmd_liveness(a) -> dict:
    if a.presentations and a.placement != "centred":
        raise ValueError("--placement is for sensor frames alone: a whole presentation places "
                         "its hand where the views see it")
    if a.presentations:
        from device.synth.presentation_sets import write_presentations
        m = write_presentations(Path(a.out), a.sensor, a.bona_fide, a.per_species, a.seed,
                                views=a.views, progress=_progress("presentations"),
                                species=a.attack_species)
        return {"out": a.out, "sensor": a.sensor, "presentations": len(m["files"]),
                "classes": m["classes"]}
    if a.placement != "centred":
        from device.synth.placement import use_placement
        use_placement(a.placement)
    if a.attack_species:
        raise ValueError("--attack-species writes whole presentations: add --presentations "
                         "(a set of sensor frames has every attack species already)")
    from device.synth.sensor_sets import write_liveness
    write_liveness(Path(a.out), a.sensor, a.bona_fide, a.per_species, a.seed)
    return {"out": a.out, "sensor": a.sensor}


def cmd_pairs(a) -> dict:
    from device.synth.sensor_sets import write_matched_pairs
    write_matched_pairs(Path(a.out), a.sensor, a.species, a.n, a.seed)
    return {"out": a.out, "sensor": a.sensor, "species": a.species}


def cmd_sr_pairs(a) -> dict:
    from device.synth.sensor_sets import write_sr_pairs
    write_sr_pairs(Path(a.out), a.sensor, a.n, a.seed)
    return {"out": a.out, "sensor": a.sensor, "pairs": a.n}


def cmd_sheet(a) -> dict:
    from device.synth.sheet import contact_sheet
    n = contact_sheet(Path(a.src), Path(a.out), a.max_images, a.tile)
    return {"out": a.out, "images": n}


def cmd_check(a) -> dict:
    from device.eval.synth_check import check_palm_set
    report = check_palm_set(Path(a.src), Path(a.real) if a.real else None,
                            max_subjects=a.max_subjects)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(report, indent=2))
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.synth", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, sessions=True):
        sp.add_argument("--out", required=True)
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all)")
        sp.add_argument("--nir-world", choices=NIR_WORLDS, default="palm-print",
                        help="NIR frames with the palm print (the default, "
                             "device.synth.bound.NIR_PALM_PRINT) or the old world without it")
        if sessions:
            sp.add_argument("--subjects", type=int, required=True)
            sp.add_argument("--sessions", type=int, default=2)
            sp.add_argument("--samples", type=int, default=10)

    sp = sub.add_parser("palms", help="palm ROI identities (128x128 grey)")
    common(sp)
    sp.set_defaults(fn=cmd_palms)
    sp = sub.add_parser("hands", help="full hands seen by K cameras, keypoints in JSON")
    common(sp)
    sp.add_argument("--views", type=int, default=3,
                    help="K: samples k*K+1 .. (k+1)*K of a session are one presentation")
    sp.add_argument("--mode", choices=["multi_camera", "motion"], default="multi_camera",
                    help="K cameras at different angles, or one camera while the palm moves")
    sp.set_defaults(fn=cmd_hands)
    sp = sub.add_parser("liveness", help="bona fide and attack-species sensor images")
    common(sp, sessions=False)
    sp.add_argument("--sensor", choices=["xray", "nir"], required=True)
    sp.add_argument("--bona-fide", type=int, required=True)
    sp.add_argument("--per-species", type=int, required=True)
    sp.add_argument("--presentations", action="store_true",
                    help="whole presentations (view_0.png .. view_<K-1>.png + sensor.png per "
                         "folder, the synthetic gate of --seed, rig.json): bona fide and the "
                         "mixed species mixed_replica_views / mixed_replica_sensor, for "
                         "`palmgate evaluate-liveness` with the binding")
    sp.add_argument("--views", type=int, default=3, help="--presentations: cameras K")
    sp.add_argument("--placement", choices=tuple(PLACEMENTS), default="centred",
                    help="sensor frames alone: how widely each hand (live or replica) ranges "
                         "over the sensor: the frame sets' own poses (centred) or 5/3 as wide, "
                         "beyond the gate's (wide; device/synth/placement.py)")
    sp.add_argument("--attack-species", action="store_true",
                    help="--presentations: also --per-species presentations of every attack "
                         "species of the sensor (the victim's replica before the cameras, the "
                         "species under the sensor; a species laid on the attacker's own live "
                         "hand lies where the replica is), after the mixed ones")
    sp.set_defaults(fn=cmd_liveness)
    sp = sub.add_parser("sr-pairs", help="low/high resolution sensor pairs (x2)")
    common(sp, sessions=False)
    sp.add_argument("--sensor", choices=["xray", "nir"], required=True)
    sp.add_argument("--n", type=int, required=True)
    sp.set_defaults(fn=cmd_sr_pairs)
    sp = sub.add_parser("pairs", help="matched pairs: a live capture and an attack copying it")
    common(sp, sessions=False)
    sp.add_argument("--sensor", choices=["xray", "nir"], required=True)
    sp.add_argument("--species", required=True)
    sp.add_argument("--n", type=int, required=True)
    sp.set_defaults(fn=cmd_pairs)
    sp = sub.add_parser("sheet", help="contact sheet PNG of a data set folder")
    sp.add_argument("src")
    sp.add_argument("--out", required=True)
    sp.add_argument("--max-images", type=int, default=48)
    sp.add_argument("--tile", type=int, default=128)
    sp.set_defaults(fn=cmd_sheet)
    sp = sub.add_parser("check", help="identity EER/d' (palm_idnet) and image statistics")
    sp.add_argument("src")
    sp.add_argument("--real", help="real ROI set in the standard layout to compare statistics")
    sp.add_argument("--max-subjects", type=int, default=1000)
    sp.add_argument("--out")
    sp.set_defaults(fn=cmd_check)
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    use_nir_world(getattr(a, "nir_world", "palm-print"))
    try:
        result = a.fn(a)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
