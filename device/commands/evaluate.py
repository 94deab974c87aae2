"""`palmgate evaluate | evaluate-liveness | evaluate-sr | review | evaluate-protection |
bench-match`: the measurement commands (they print JSON)."""
from __future__ import annotations

import json
import sys


def cmd_evaluate(a) -> int:
    """ISO/IEC 19795-style verification test of a matcher on a data set."""
    import os
    if "numpy" not in sys.modules:      # the matcher's own threads; BLAS ones only contend
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from device.eval.recognition import evaluate
    from device.recognition.matchers import DEFAULT_MATCHER, LEARNED
    if a.precision != "fp32" and (a.matcher or DEFAULT_MATCHER) not in LEARNED \
            and a.level != "hand":
        raise ValueError(f"--precision int8 applies to the matchers with a learned network "
                         f"({', '.join(LEARNED)}) and to the front end's models (--level "
                         f"hand); the other matchers are classical")
    if a.level != "hand" and (a.segmenter or a.landmarks or a.no_quality):
        raise ValueError("--segmenter, --landmarks and --no-quality apply to --level hand")
    report = evaluate(a.dir, level=a.level, views=a.views, protocol=a.protocol,
                      matcher=a.matcher, out=a.out, protected=a.protected,
                      precision=a.precision, segmenter=a.segmenter, landmarks=a.landmarks,
                      config=a.config, quality=not a.no_quality, fusion=a.fusion,
                      pair_rule=a.pair_rule, degrade=a.degrade, seed=a.seed,
                      view_check=not a.no_view_check,
                      threads=a.threads or os.cpu_count() or 1,
                      progress=_progress)
    print(json.dumps(report, indent=2))
    return 0


def _progress(what: str, n: int) -> None:
    print(f"{what} {n}" + (" images" if what in ("encoded", "regions") else ""),
          file=sys.stderr)


def cmd_evaluate_liveness(a) -> int:
    """ISO/IEC 30107-3 presentation-attack detection test of the sensor stage as the gate runs
    it (presence -> SR -> liveness, seed 001; presentations with views also through the palm
    regions and the binding), with the deny reason of every sample."""
    if a.enrol_presentations is not None and (not a.enrol or a.enrol_presentations < 1):
        raise ValueError("evaluate-liveness: --enrol-presentations takes a number >= 1, "
                         "with --enrol")
    if a.enrol:
        from device.commands.common import err
        from device.eval.liveness_enrol import evaluate_liveness_enrol
        from device.gate.enrol_capture import PRESENTATIONS
        if a.config is not None:
            raise ValueError("evaluate-liveness: --enrol runs the set's own synthetic gate "
                             "(rig.json); --config is not taken with it")
        report = evaluate_liveness_enrol(a.dir, a.sensor, a.out, precision=a.precision,
                                         models_dir=a.models, threads=a.threads or 1,
                                         per_class=a.per_class, log=err,
                                         enrol_presentations=a.enrol_presentations
                                         or PRESENTATIONS,
                                         landmark_precision=a.landmark_precision)
        print(json.dumps(report, indent=2))
        return 0
    if a.per_class is not None:
        raise ValueError("evaluate-liveness: --per-class is taken only with --enrol")
    if a.landmark_precision is not None:
        raise ValueError("evaluate-liveness: --landmark-precision is taken only with --enrol "
                         "(without it, [gate] landmark_precision of --config)")
    from device.eval.liveness import evaluate_liveness
    report = evaluate_liveness(a.dir, a.sensor, a.out, precision=a.precision,
                               models_dir=a.models, threads=a.threads, config=a.config)
    print(json.dumps(report, indent=2))
    return 0


def cmd_evaluate_sr(a) -> int:
    """PSNR/SSIM of the sensor branch's super-resolution model against bicubic x2."""
    from device.eval.liveness import evaluate_sr
    print(json.dumps(evaluate_sr(a.dir, a.sensor, a.out, precision=a.precision,
                                 models_dir=a.models, threads=a.threads), indent=2))
    return 0


def cmd_review(a) -> int:
    """Keep reviewer-labelled misclassified presentations for liveness retraining."""
    from device.eval.review import review
    print(json.dumps(review(a.dir, a.sensor, a.out, labels_file=a.labels,
                            precision=a.precision, models_dir=a.models,
                            threads=a.threads), indent=2))
    return 0


def cmd_evaluate_protection(a) -> int:
    """Template-protection test (seed 002, ISO/IEC 30136): accuracy, D_sys, inversion."""
    from device.eval.protection import config_from_args, run
    if a.feature == "learned":
        from device.recognition.learned import LearnedExtractor
        extractor = LearnedExtractor()
    else:
        from device.recognition.cells import CellExtractor
        extractor = CellExtractor()
    report = run(a.dir, a.out, config=config_from_args(a), seed=a.seed, do_sweep=a.sweep,
                 ts=a.sweep_t, drops=a.sweep_drop, budgets=a.sweep_budget,
                 rotations=a.sweep_rotation,
                 max_subjects=a.max_subjects, extractor=extractor,
                 log=lambda line: print(line, file=sys.stderr))
    print(json.dumps({k: v for k, v in report.items() if k != "detail"}, indent=2))
    return 0


def cmd_bench_match(a) -> int:
    """1:N protected search time over a large in-memory gallery (prints JSON)."""
    import os
    if a.blas_threads and "numpy" not in sys.modules:   # must precede numpy's import
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(a.blas_threads)
    from device.eval.protect_bench import bench_match
    from device.eval.protection import config_from_args
    print(json.dumps(bench_match(users=a.users, templates=a.templates, queries=a.queries,
                                 config=config_from_args(a), seed=a.seed,
                                 distractors=a.distractors, plant=a.plant, check=a.check),
                     indent=None if a.json else 2))
    return 0


def _protect_args(sp) -> None:
    # no device.protect import here: bench-match sets BLAS threads before numpy loads
    sp.add_argument("--t", type=float, default=None, help="slerp weight toward the key "
                    "(default: device/protect/defaults.py)")
    sp.add_argument("--rotation", default=None,
                    choices=["fraction", "equal_angle", "orthographic", "equal_distance"],
                    help="fraction: the seed's fixed t; equal_angle: every sub-feature turns "
                         "by t*90 deg; orthographic: its offset from the key is "
                         "sin((1-t)*90 deg) times the feature's; equal_distance: every "
                         "sub-feature lands (1-t)*90 deg from its key (README)")
    sp.add_argument("--n-drop", type=int, default=None,
                    help="dimensions dropped per sub-feature (mode A; with --drop-mode "
                         "importance the budget is n-drop x G unless --drop-total)")
    sp.add_argument("--drop-mode", choices=["random", "importance"], default=None)
    sp.add_argument("--drop-total", type=int, default=None,
                    help="importance-driven drop budget (claim 6): dimensions dropped over "
                         "all sub-features")
    sp.add_argument("--fill", choices=["zero", "random", "key"], default=None)
    sp.add_argument("--key-mode", choices=["per_cell", "shared"], default=None)
    sp.add_argument("--seed", type=int, default=0, help="enrolment randomness (reproducible "
                                                        "evaluation; the gate uses os.urandom)")


def _sensor_args(sp) -> None:
    sp.add_argument("dir")
    sp.add_argument("--sensor", choices=["xray", "nir"], required=True)
    sp.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
    sp.add_argument("--models", default=None, help="models folder (default: the shipped one)")
    sp.add_argument("--threads", type=int, default=0)


def register(sub) -> None:
    sp = sub.add_parser("evaluate", help="verification test (EER, TAR@FAR, DET) on a data set "
                                         "in the standard layout DIR/<subject>/<session>_<sample>")
    sp.add_argument("dir")
    sp.add_argument("--level", choices=["roi", "hand"], default="roi")
    sp.add_argument("--views", type=int, default=1, help="samples per capture (N), its views")
    sp.add_argument("--fusion", choices=["attention", "mean"], default=None,
                    help="a capture's views fused into one feature: attention (the learned "
                         "multi-view fusion of seed 000; the default where the feature has "
                         "one) or mean (the mean of the views' unit cells, re-normalised)")
    sp.add_argument("--pair-rule", choices=["best", "mean"], default=None,
                    help="score a capture pair from its N x N view-pair scores instead: the "
                         "best or the mean (the default for features without a learned "
                         "fusion)")
    sp.add_argument("--degrade", type=int, default=0, metavar="K",
                    help="degrade K of the N views of every capture (blur, occlusion, glare, "
                         "exposure, misalignment: device/eval/degrade.py)")
    sp.add_argument("--seed", type=int, default=0, help="which views are degraded, and how")
    sp.add_argument("--no-view-check", action="store_true",
                    help="score every view; default: as the gate, drop the views whose palm "
                         "region has no palm texture ([quality] min_texture, max_clipped; "
                         "device/vision/view_usability.py) before fusing or pairing, and deny "
                         "a capture left with fewer than [gate] min_views")
    sp.add_argument("--threads", type=int, default=0,
                    help="protected matching threads (default: the CPU count)")
    sp.add_argument("--protocol", choices=["cross-session", "all-pairs"],
                    default="cross-session")
    sp.add_argument("--protected", action="store_true", help="match protected templates")
    sp.add_argument("--precision", choices=["int8", "fp32"], default="fp32")
    sp.add_argument("--segmenter", choices=["classical", "net"], default=None,
                    help="--level hand: the fallback path's hand mask of colour images from "
                         "the classical segmentation, or the gate's segmentation network "
                         "first (at --precision); default: the configuration's ([gate] "
                         "segmenter)")
    sp.add_argument("--landmarks", choices=["full", "lite", "off"], default=None,
                    help="--level hand: the hand-landmark network of the front end (at "
                         "--precision), or off; default: the configuration's ([gate] "
                         "landmarks)")
    sp.add_argument("--config", default=None,
                    help="the gate configuration whose [quality] settings and [gate] "
                         "min_views the view check runs, and (--level hand) whose front end "
                         "(default: the defaults)")
    sp.add_argument("--no-quality", action="store_true",
                    help="--level hand: leave out the quality checks (the region steps' own "
                         "failures still count)")
    sp.add_argument("--matcher", default=None,
                    help="hybrid (default: the classical and the learned cells in one shift "
                         "search, the gate's [match] feature = hybrid; --precision int8 "
                         "selects its int8 cell net), cells (the classical cells alone, the "
                         "gate's [match] feature = cells), bocv or compcode (classical "
                         "baselines), learned (learned cells + multi-view attention fusion, "
                         "seed 000), "
                         "learned-cells (no fusion); --protected gives the protected form of "
                         "hybrid, cells or learned")
    sp.add_argument("--out", required=True)
    sp.set_defaults(fn=cmd_evaluate)

    sp = sub.add_parser("evaluate-liveness", help="ISO/IEC 30107-3 liveness test of the gate's "
                        "sensor stage (presence -> SR -> liveness; APCER per species, BPCER, "
                        "BPCER20/100, deny reasons, DET) on DIR/bona_fide and "
                        "DIR/attack/<species> (a species `no_hand` is scored like any other). "
                        "A sample is a sensor frame (an image: not bound to views) or a "
                        "presentation folder (view_0.png .. view_<K-1>.png + sensor.png, the "
                        "recorded-burst layout; `python -m tools.synth liveness "
                        "--presentations` writes them): quality, palm regions, presence -> SR "
                        "-> liveness, then the binding to the views, as at the gate")
    _sensor_args(sp)
    sp.add_argument("--config", default=None,
                    help="presentations: the gate's configuration whose calibration gives the "
                         "sensor-to-view registration (default: the synthetic gate named by "
                         "DIR/rig.json)")
    sp.add_argument("--enrol", action="store_true",
                    help="a synthetic presentation set: enrol its people first (the real "
                         "enrolment path, a temporary store), then decide every presentation "
                         "as the gate does (1:N, the identity checks): APCER = the gate "
                         "opened, BPCER = it did not open as the person (over all and over "
                         "the acquired), FTA = quality:* denies")
    sp.add_argument("--per-class", type=int, default=None, metavar="N",
                    help="--enrol: only the first N presentations of each class (folder "
                         "order)")
    sp.add_argument("--enrol-presentations", type=int, default=None, metavar="N",
                    help="--enrol: enrolment presentations a person (default 3, as "
                         "palmgate enroll --capture takes; runs recorded before 2026-12-07 "
                         "04:00 UTC took 2)")
    sp.add_argument("--landmark-precision", choices=["gate", "fp32", "int8"], default=None,
                    help="--enrol: the synthetic gate's [gate] landmark_precision (default: "
                         "the configuration's)")
    sp.add_argument("--out", required=True)
    sp.set_defaults(fn=cmd_evaluate_liveness)

    sp = sub.add_parser("evaluate-sr", help="PSNR/SSIM of the super-resolution model vs "
                                            "bicubic on DIR/lr, DIR/hr pairs")
    _sensor_args(sp)
    sp.add_argument("--out", default=None)
    sp.set_defaults(fn=cmd_evaluate_sr)

    sp = sub.add_parser("review", help="keep reviewer-labelled misclassified presentations "
                                       "(liveness layout) for `python -m tools.train liveness "
                                       "--retrain-from OUT`")
    _sensor_args(sp)
    sp.add_argument("--labels", default=None, help="CSV file,label[,species] or JSON "
                                                   "{file: label}; default: DIR's own layout")
    sp.add_argument("--out", required=True)
    sp.set_defaults(fn=cmd_review)

    sp = sub.add_parser("evaluate-protection", help="template-protection test (seed 002): "
                        "protected vs unprotected EER/TAR, unlinkability D_sys, inversion "
                        "success with and without the key; --sweep over t and drop count")
    sp.add_argument("dir")
    sp.add_argument("--out", required=True)
    _protect_args(sp)
    sp.add_argument("--sweep", action="store_true", help="also sweep rotation x t x drop "
                                                         "(OUT/sweep.json)")
    sp.add_argument("--sweep-t", type=float, nargs="+", default=[0.8, 0.85, 0.9, 0.95, 0.98])
    sp.add_argument("--sweep-drop", type=int, nargs="+", default=[0, 1, 2, 4],
                    help="mode-A drop counts per sub-feature")
    sp.add_argument("--sweep-budget", type=int, nargs="*", default=[12, 25],
                    help="importance-driven drop budgets (claim 6): counts over all cells")
    sp.add_argument("--sweep-rotation", nargs="+",
                    choices=["fraction", "equal_angle", "orthographic", "equal_distance"],
                    default=["fraction", "orthographic", "equal_distance"])
    sp.add_argument("--max-subjects", type=int, default=None)
    sp.add_argument("--feature", choices=["cells", "learned"], default="cells",
                    help="the recognition feature whose sub-features are protected (cells: the "
                         "shipped classical one; learned: models/recognition_*.onnx)")
    sp.set_defaults(fn=cmd_evaluate_protection)

    sp = sub.add_parser("bench-match", help="1:N protected search time over a large "
                                            "in-memory gallery (match_ms median/p95)")
    sp.add_argument("--users", type=int, default=10000)
    sp.add_argument("--templates", type=int, default=3, help="templates per user")
    sp.add_argument("--queries", type=int, default=50)
    sp.add_argument("--distractors", default=None, help="layout folder whose palms make "
                                                        "chimera distractors")
    sp.add_argument("--plant", default=None, help="layout folder of real users to enrol and "
                                                  "query (session 1 enrolled, session 2 queries)")
    sp.add_argument("--check", type=int, default=5, help="queries also searched exhaustively")
    sp.add_argument("--json", action="store_true", help="one line of JSON")
    sp.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS threads for the search (default 1: one query at a time; "
                         "0 leaves the library default)")
    _protect_args(sp)
    sp.set_defaults(fn=cmd_bench_match)
