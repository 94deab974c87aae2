"""The gate's one configuration file (TOML), every option documented, validated at start.

``load_config(path)`` reads a TOML file (``None``: the defaults, which run the demo), checks
every key against :data:`SCHEMA` and returns a :class:`Config` (``cfg.relay.pulse_ms``,
``cfg["relay"]["pulse_ms"]``). An unknown section or key, a wrong type or a value outside its
allowed range raises :class:`ConfigError` naming the key, e.g. ``relay.pulse_ms: 20 is below
the minimum 50``. ``device.config_text.render_example()`` writes the documented example file
(``device/palmgate.example.toml``, kept equal to it by a test).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

try:                                    # Python 3.11+
    import tomllib
except ModuleNotFoundError:             # pragma: no cover - 3.10 with the tomli backport
    import tomli as tomllib             # type: ignore[no-redef]


from device.config_types import ConfigError, Opt  # noqa: F401 (names of this module)
from device.config_types import pin_id as _pin_id
from device.config_gpio import GPIO_SECTION
from device.config_network import NETWORK_SECTIONS
from device.config_liveness import LIVENESS_SECTION


# section -> (section doc, {key: Opt}). Empty string = "not set" where nullable.
SCHEMA: dict[str, tuple[str, dict[str, Opt]]] = {
    "gate": ("The terminal and its decision loop.", {
        "terminal": Opt("gate-1", "Name of this terminal in the audit log."),
        "mode": Opt("identify", "identify: 1:N search over all enrolled users; verify: 1:1 "
                    "against the id claimed with the presentation (card, PIN pad).",
                    choices=("identify", "verify")),
        "views": Opt(3, "Visible views K per presentation burst.", int, min=1, max=8),
        "precision": Opt("int8", "Precision of every ONNX model on the gate's path: the "
                         "hand-landmark network (hand_landmark*; see landmark_precision), "
                         "the hand segmentation network (hand_seg*), the sensor models "
                         "(sr_*, liveness_*), the "
                         "learned cells and the view fusion (recognition_cells*, "
                         "recognition_fusion*): int8 = the _int8 files (static QDQ; faster "
                         "on ARM cores with dot-product instructions), fp32 = the float "
                         "files. A model without an int8 file runs fp32 and the log says so.",
                         choices=("int8", "fp32")),
        "segmenter": Opt("net", "Hand mask of colour views: net = the segmentation network "
                                "first (models/hand_seg*.onnx, a few ms a view), the classical "
                                "skin-colour + GrabCut hypotheses as fallback; classical = "
                                "GrabCut only (about 110 ms of CPU a 640x480 view). Grey NIR "
                                "views always take the fast intensity segmentation.",
                         choices=("net", "classical")),
        "landmarks": Opt("full", "Hand-landmark network of the palm front end "
                                 "(models/hand_landmark[_lite][_int8].onnx at "
                                 "landmark_precision): the palm regions come from its "
                                 "landmarks, the segmentation path above is the fallback (no "
                                 "hand seen, palm cut off, fingers out of the frame as on a "
                                 "pegged NIR sensor). full, lite (about half the cost) or off.",
                         choices=("full", "lite", "off")),
        "landmark_precision": Opt("gate", "Precision of the hand-landmark network alone: "
                                          "gate = [gate] precision, fp32 or int8 (its int8 "
                                          "file moves landmarks a median 2.5 px, "
                                          "docs/results.md).",
                                  choices=("gate", "fp32", "int8")),
        "nir_order": Opt("classical-first", "Grey (NIR) views: classical-first = the "
                                            "intensity segmentation and finger valleys "
                                            "first (made for pegged NIR sensors whose frame "
                                            "cuts the fingers off), the landmarks where they "
                                            "fail; landmarks-first = as colour views (a "
                                            "contactless NIR camera that sees whole hands). "
                                            "Mixing the two paths for one palm costs "
                                            "accuracy: their regions differ.",
                         choices=("classical-first", "landmarks-first")),
        "threads": Opt(2, "Worker threads that find the palm regions of the K views in "
                          "parallel.", int, min=1, max=16),
        "overlap": Opt(True, "Run the sensor chain (presence, SR + liveness, then the binding) "
                             "on its own thread beside the regions, feature and match; the "
                             "decision is the same either way (false: every stage in "
                             "sequence, e.g. on a one-core board).", bool),
        "model_threads": Opt(1, "onnxruntime intra-op threads of the sensor models (more "
                                "threads spin between runs and take CPU from the other "
                                "stages on a small board).", int, min=1, max=16),
        "cooldown_s": Opt(1.0, "Pause after every decision before the next presentation "
                               "(the turnstile turns, the person walks through).", float,
                          min=0.0, max=60.0),
        "min_views": Opt(2, "Fewest views with a usable palm region for a decision; below "
                            "this the person is asked to adjust the palm.", int, min=1, max=8),
        "serial": Opt("", "This unit's serial number, which the factory calibration file must "
                          "name; empty: the board's own (/proc/device-tree/serial-number on a "
                          "Raspberry Pi).", nullable=True),
    }),
    "paths": ("Files on the unit.", {
        "store": Opt("palmgate/templates.db", "Sealed SQLite template store (relative paths "
                     "are relative to the working directory)."),
        "device_key": Opt("", "32-byte device key file, mode 0600; made on first use when "
                              "create_key is true. Keep it out of the store's folder, on "
                              "its own (read-only) partition or sealed by a TPM / secure "
                              "element (docs/security.md). Empty: $PALMGATE_DEVICE_KEY, else "
                              "/etc/palmgate/device.key where /etc/palmgate exists, else "
                              "~/.config/palmgate/device.key; a key still at the old default "
                              "palmgate/device.key beside the store is used with a warning "
                              "to move it.", nullable=True),
        "generation_counter": Opt("", "File that keeps the template store's generation "
                                  "outside the database (rollback detection, "
                                  "device/store/counter.py); put it on another partition than "
                                  "the store, e.g. beside the device key. Empty: "
                                  "<store>.generation.", nullable=True),
        "create_key": Opt(True, "Create the device key if it is missing (factory or demo; "
                                "false on a deployed unit).", bool),
        "models": Opt("", "Models folder with manifest.json (empty: the shipped models/).",
                      nullable=True),
        "status_file": Opt("", "Health report the running gate rewrites after every "
                           "decision (device/ops/health.py), e.g. /run/palmgate/status.json; "
                           "empty: none.", nullable=True),
        "calibration": Opt("", "The unit's signed factory calibration file (palmgate-calibrate; "
                           "docs/calibration.md), e.g. /etc/palmgate/calibration.json. "
                           "Required with source.kind cameras; applied to replayed bursts "
                           "when set; never applied to the synthetic source (rendered views "
                           "have no lens). See [calibration].", nullable=True),
    }),
    "source": ("Where presentation bursts come from.", {
        "kind": Opt("synthetic", "synthetic: rendered presentations (demo); replay: recorded "
                    "bursts under replay_dir; cameras: live FrameSources.",
                    choices=("synthetic", "replay", "cameras")),
        "replay_dir": Opt("", "Folder of recorded bursts (one sub-folder per burst: "
                          "view_0.png .. view_<K-1>.png, sensor.png, burst.json).",
                          nullable=True),
        "cameras": Opt([], "Visible cameras, one FrameSource spec each (opencv:0, "
                           "opencv:/dev/video2, folder:GLOB, or picamera2:<Id> where the "
                           "picamera2 adapter is installed).", list),
        "sensor_camera": Opt("", "Transmission-sensor FrameSource spec (X-ray panel or NIR "
                                 "camera).", nullable=True),
        "capture_timeout_s": Opt(2.0, "A camera that delivers no frame within this is a fault "
                                      "(deny, reason camera_timeout).", float, min=0.05,
                                 max=60.0),
        "synthetic_seed": Opt(0, "Seed of the synthetic source.", int, min=0),
    }),
    "calibration": ("The factory calibration applied at runtime (docs/calibration.md): every "
                    "view undistorted (and rectified when asked), the transmission-sensor frame "
                    "flat-fielded and registered to the views. A missing, tampered, stale, "
                    "other-unit or incomplete file ([paths] calibration) stops the gate at "
                    "start with its own message.", {
        "allow_uncalibrated": Opt(False, "Run anyway when the file is missing or refused: the "
                                         "views pass uncorrected, a warning is logged and the "
                                         "status report says uncalibrated. For bring-up only; "
                                         "the synthetic source never needs a file.", bool),
        "max_age_days": Opt(365.0, "A file signed longer ago than this is stale (0: no age "
                                   "limit).", float, min=0.0),
        "cameras": Opt([], "Camera name in the calibration file of each view, view 0 first "
                           "(empty: cam0, cam1, ... as palmgate-calibrate names them).", list),
        "rectify": Opt(False, "Also rectify the views onto one image plane (views 0 and 1 "
                              "row-aligned, further views rotated into the same frame; needs "
                              "the extrinsics step). false: undistortion only, which keeps "
                              "each camera's field.", bool),
    }),
    "quality": ("Quality gate on every view before the pipeline runs.", {
        "min_mean": Opt(25.0, "Darkest acceptable mean grey level (0-255): under-exposed "
                              "below.", float, min=0.0, max=255.0),
        "max_mean": Opt(230.0, "Brightest acceptable mean grey level: over-exposed above.",
                        float, min=0.0, max=255.0),
        "max_clipped": Opt(0.25, "Largest fraction of saturated (>=250) pixels.", float,
                           min=0.0, max=1.0),
        "min_sharpness": Opt(4.0, "Smallest variance of the Laplacian of the palm region "
                                  "(motion or focus blur below). Real phone photos of "
                                  "still hands reach 5-300 (NTUST), so this catches only "
                                  "heavy blur.", float, min=0.0),
        "min_texture": Opt(1.2, "Smallest palm-line contrast of a view's palm region (grey "
                                "levels: std of a band-pass at the palm-line scale; "
                                "device/vision/view_usability.py): a flat, saturated, black "
                                "or deeply under-exposed view has none and is dropped before "
                                "the views are fused (then [gate] min_views applies). Clean "
                                "real regions: Tongji 1.9 and up, PolyU NIR 1.25 and up; 0 "
                                "checks nothing.", float, min=0.0),
        "min_gradient_isotropy": Opt(0.25, "Smallest isotropy of the palm centre's fine "
                                           "detail (smallest over largest eigenvalue of its "
                                           "gradient structure tensor, 0-1): below, the view "
                                           "is smeared in one direction (motion_blur: 'hold "
                                           "your hand still'); 0 checks nothing. Chosen on "
                                           "Tongji training ROIs and development synthetic "
                                           "hands (none of their sharp views under 0.25); "
                                           "see docs/palm-regions.md.",
                                     float, min=0.0, max=1.0),
        "min_region_quality": Opt(0.0, "Smallest palm-region quality (device.vision.regions, "
                                       "0-1; on the landmark path presence x exposure); 0 "
                                       "checks nothing. The classical measure did not "
                                       "predict matching: the 28 PolyU NIR frames under 0.5 "
                                       "(one at 0) matched as well as the rest.",
                                  float, min=0.0, max=1.0),
        "min_presence": Opt(0.5, "Smallest hand presence (0-1) of the landmark network for "
                                 "its landmarks to be used.", float, min=0.0, max=1.0),
        "min_palm_px": Opt(64.0, "Smallest palm-centre square, in image pixels, on the "
                                 "landmark path: smaller asks the person to move closer "
                                 "(hand_too_small).", float, min=0.0),
        "max_palm_fraction": Opt(0.7, "Largest knuckle width (index to little MCP) as a "
                                      "fraction of the frame's short side: larger asks the "
                                      "person to move back (too_near).", float, min=0.05,
                                 max=2.0),
        "min_openness": Opt(1.3, "Fingertip-to-wrist over knuckle-to-wrist distance below "
                                 "which a finger counts as curled; two curled fingers ask "
                                 "the person to open the hand (not_open). Open hands: "
                                 "1.6-2.0.", float, min=0.0),
        "min_foreshortening": Opt(0.4, "Smallest knuckle width / palm length (wrist to middle "
                                       "knuckle) of a palm facing the camera (0.55-0.95 "
                                       "flat); below, the palm is turned away (not_flat).",
                                  float, min=0.0),
        "max_foreshortening": Opt(1.3, "Largest knuckle width / palm length; above, the palm "
                                       "is tipped back (not_flat).", float, min=0.0),
    }),
    "liveness": LIVENESS_SECTION,
    "match": ("Protected-template matching (seed 002).", {
        "feature": Opt("hybrid", "Palm feature: hybrid = the classical Gabor cells and the "
                                 "learned cells (seed 000, models/recognition_*.onnx at [gate] "
                                 "precision) in one shift search, 98 sub-features, the views "
                                 "of a presentation fused by the attention fusion (learned "
                                 "half) and the per-cell mean (classical half); cells = the "
                                 "classical cells alone (49 sub-features, the views' mean), "
                                 "half the gallery memory, behind the project's BOCV on real "
                                 "palms (docs/recognition.md). Either way a presentation is "
                                 "one fused feature and an enrolment presentation one "
                                 "template. Templates enrolled with the other feature are not "
                                 "loaded: re-enrol after a change.",
                       choices=("hybrid", "cells")),
        "far": Opt("1e-4", "Operating point: the threshold calibrated for this false-accept "
                           "rate and feature (device/protect/defaults.py).",
                   choices=("1e-3", "1e-4")),
        "threshold": Opt("", "Explicit score threshold instead of far (empty: use far).",
                         float, min=-1.0, max=1.0, nullable=True),
        "shortlist": Opt(16, "Templates that get the exact search after the coarse pass (the "
                             "int8 pass over every template's 392-byte index; on Tongji "
                             "validation palms among 20,000 templates the right one ranked "
                             "first in 600 of 600 queries, docs/results.md).",
                         int, min=1),
        "storage": Opt("int8", "Precision the in-memory gallery keeps the protected cells "
                               "and keys in (the arithmetic is float32; "
                               "device/protect/storage.py): int8 = a quarter of float32 (each "
                               "key cell as int8 with its scale, each encrypted cell as its "
                               "projection on the key plus an int8 residual; on Tongji "
                               "validation palms scores moved by at most 1.6e-4, median "
                               "2.4e-5); float16 = half (at most 3e-5); float32 for bit-exact "
                               "scores.",
                       choices=("int8", "float16", "float32")),
    }),
    "relay": ("Turnstile / door relay.", {
        "kind": Opt("sim", "sim: in-process simulator (no hardware); lcus: LCUS USB relay; "
                           "modbus: Modbus RTU relay board.", choices=("sim", "lcus", "modbus")),
        "port": Opt("", "Serial port (/dev/ttyUSB0) or pyserial URL.", nullable=True),
        "channel": Opt(1, "Relay channel that opens the turnstile.", int, min=1, max=32),
        "channels": Opt(1, "Channels on the board (all switched off at start).", int, min=1,
                        max=32),
        "pulse_ms": Opt(200, "Pulse length; turnstile controllers want at least 100 ms.",
                        int, min=50, max=60000),
        "unit": Opt(1, "Modbus unit id.", int, min=1, max=247),
        "baudrate": Opt(9600, "Serial speed.", int, min=1200, max=921600),
        "timeout_s": Opt(0.5, "Seconds to wait for a Modbus answer.", float, min=0.05,
                         max=10.0),
        "board_pulse": Opt(False, "Modbus only: send each pulse as the board's own timed "
                                  "\"flash on\" command (function 05 at flash_base + coil, the "
                                  "time in 100 ms units; Waveshare Modbus RTU Relay and "
                                  "alikes), so the board ends the pulse even if the gate is "
                                  "killed mid-pulse without systemd's ExecStopPost. A board "
                                  "without the function refuses it: check with palmgate "
                                  "relay-test --board-pulse first (docs/relays.md).", bool),
        "flash_base": Opt(512, "Modbus register address of the board's \"flash on\" command "
                               "for the first coil (512 = 0x0200).", int, min=0, max=65535),
        "reconnect_min_s": Opt(0.5, "After a failed relay command the line is reopened after "
                                    "this many seconds, doubling up to reconnect_max_s; every "
                                    "channel is switched off as soon as it answers.", float,
                               min=0.05, max=60.0),
        "reconnect_max_s": Opt(2.0, "Longest wait between two reopen attempts of a lost relay "
                                    "line.", float, min=0.05, max=300.0),
    }),
    "timeouts": ("Per-stage time limits in milliseconds: a stage over its limit denies "
                 "(reason timeout:<stage>); it never opens.", {
        "capture": Opt(2000, "Whole burst capture.", int, min=1),
        "quality": Opt(500, "Quality gate.", int, min=1),
        "calibration": Opt(500, "Calibration of the views and the sensor frame.", int, min=1),
        "regions": Opt(3000, "Palm regions of all views.", int, min=1),
        "sensor": Opt(1000, "Presence, SR + liveness of the sensor frame.", int, min=1),
        "binding": Opt(1000, "The sensor frame's hand bound to the views' (runs beside the "
                             "feature and match).", int, min=1),
        "feature": Opt(1000, "Cell features of all views.", int, min=1),
        "match": Opt(1000, "1:N or 1:1 search.", int, min=1),
        "identity": Opt(1000, "NIR: the sensor frame against the identified person's sensor "
                              "templates (after the match).", int, min=1),
    }),
    "attempts": ("Attempt limiting per user and per terminal (device/store/attempts.py): a "
                 "few free failures, then a delay that doubles with every further failure. A "
                 "user's counter counts the failures claiming them (verify) or coming closest "
                 "to them or identifying them (identify; a sensor_identity deny) and is reset only by their own success or palmgate "
                 "attempts reset; the terminal's counts every failure, is never reset by a "
                 "success and leaks one failure every terminal_decay_s. Kept in the store: a "
                 "restart does not reset them.", {
        "max_failures": Opt(0, "Failures of one user before their delays start (0: 5, or 10 "
                               "with liveness on).", int, min=0),
        "base_delay_s": Opt(30.0, "First lock-out delay; doubles with every further failure.",
                            float, min=0.0),
        "max_delay_s": Opt(3600.0, "Longest lock-out delay.", float, min=1.0),
        "terminal_max_failures": Opt(0, "Failures at this terminal, whoever made them, before "
                                        "every presentation waits (0: 20).", int, min=0),
        "terminal_decay_s": Opt(300.0, "The terminal's count drops by one failure every this "
                                       "many seconds (0: never): a busy gate's false "
                                       "rejections never add up, a repeated impostor is "
                                       "slowed to about one try per this.", float, min=0.0),
    }),
    "gpio": GPIO_SECTION,
}
SCHEMA["audit"] = ("Audit log retention: records older than retention_days are written to an "
                   "archive file (JSON lines with their chain hashes; palmgate audit verify "
                   "--archive FILE checks one) and then removed from the store, by palmgate "
                   "audit prune and by the running gate once a day. The store keeps the hash "
                   "of the last archived record, so its own chain still verifies.", {
    "retention_days": Opt(0, "Days of audit records kept in the store; 0 = keep forever.",
                          int, min=0, max=36500),
    "archive_dir": Opt("", "Folder of the archive files (one per prune, named by its record "
                           "range, mode 0600); empty: audit-archive/ beside the store.",
                       nullable=True),
})
SCHEMA.update(NETWORK_SECTIONS)     # [split], [site]


def _door_sections() -> dict:
    from device.config_door import DOOR_SECTIONS
    return {s: (doc, {k: Opt(**kw) for k, kw in opts.items()})
            for s, (doc, opts) in DOOR_SECTIONS.items()}


SCHEMA.update(_door_sections())         # [decision], [card], [osdp], [wiegand]


class Section:
    def __init__(self, name: str, values: dict):
        self._name, self._values = name, values

    def __getattr__(self, k):
        try:
            return self.__dict__["_values"][k]
        except KeyError:
            raise AttributeError(f"{self._name}.{k}") from None

    def __getitem__(self, k):
        return self._values[k]

    def as_dict(self) -> dict:
        return dict(self._values)


class Config:
    def __init__(self, data: dict, path: str | None = None):
        self.path = path
        self._data = data
        for s, v in data.items():
            setattr(self, s, Section(s, v))

    def __getitem__(self, s):
        return self._data[s]

    def as_dict(self) -> dict:
        return {s: dict(v) for s, v in self._data.items()}

    def replace(self, **sections) -> "Config":
        """A copy with some keys changed: ``cfg.replace(relay={"kind": "lcus"})`` (validated)."""
        d = self.as_dict()
        for s, kv in sections.items():
            d.setdefault(s, {}).update(kv)
        return validate(d, self.path)


_PIN_RE = re.compile(r"(?:GPIO|BCM|BOARD|WPI|J8:)?\d+", re.IGNORECASE)


def _check_pin(name: str, value):
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{name}: expected a pin (17, \"GPIO17\", \"BOARD11\"), got "
                          f"{type(value).__name__} {value!r}")
    if isinstance(value, int):
        if not 0 <= value <= 53:
            raise ConfigError(f"{name}: {value} is not a BCM GPIO number (0-53)")
        return value
    if not _PIN_RE.fullmatch(value.strip()):
        raise ConfigError(f"{name}: {value!r} is not a pin name (17, \"GPIO17\", \"BCM17\", "
                          f"\"BOARD11\", \"J8:11\")")
    v = value.strip()
    return int(v) if v.isdigit() else v.upper()


GPIO_PINS = ("illuminator_pin", "strobe_pin", "door_pin", "exit_pin")


def _check(section: str, key: str, opt: Opt, value):
    name = f"{section}.{key}"
    if opt.nullable and (value == "" or value is None):
        return None
    if opt.pin:
        return _check_pin(name, value)
    t = opt.type
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if t is int and isinstance(value, bool) or t is float and isinstance(value, bool):
        raise ConfigError(f"{name}: expected {t.__name__}, got {value!r}")
    if not isinstance(value, t):
        raise ConfigError(f"{name}: expected {getattr(t, '__name__', t)}, got "
                          f"{type(value).__name__} {value!r}")
    if t is list:
        for v in value:
            if not isinstance(v, str):
                raise ConfigError(f"{name}: every entry must be a string, got {v!r}")
    if t is float and value != value:          # NaN: passes every min/max comparison
        raise ConfigError(f"{name}: nan is not a number")
    if opt.choices and value not in opt.choices:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(map(str, opt.choices))}")
    if opt.min is not None and value < opt.min:
        raise ConfigError(f"{name}: {value!r} is below the minimum {opt.min:g}")
    if opt.max is not None and value > opt.max:
        raise ConfigError(f"{name}: {value!r} is above the maximum {opt.max:g}")
    return value


def validate(raw: dict, path: str | None = None) -> Config:
    where = f" in {path}" if path else ""
    out: dict[str, dict] = {}
    for section, kv in raw.items():
        if section not in SCHEMA:
            raise ConfigError(f"{section}: unknown section{where} (known: "
                              f"{', '.join(SCHEMA)})")
        if not isinstance(kv, dict):
            raise ConfigError(f"{section}: must be a [table]{where}")
        for k in kv:
            if k not in SCHEMA[section][1]:
                raise ConfigError(f"{section}.{k}: unknown key{where} (known: "
                                  f"{', '.join(SCHEMA[section][1])})")
    for section, (_, opts) in SCHEMA.items():
        given = raw.get(section, {})
        out[section] = {k: _check(section, k, o, given.get(k, o.default))
                        for k, o in opts.items()}
    g = out["gate"]
    if g["min_views"] > g["views"]:
        raise ConfigError(f"gate.min_views: {g['min_views']} is more than gate.views "
                          f"{g['views']}")
    q = out["quality"]
    if q["min_foreshortening"] >= q["max_foreshortening"]:
        raise ConfigError("quality.min_foreshortening: must be below "
                          "quality.max_foreshortening")
    if q["min_mean"] >= q["max_mean"]:
        raise ConfigError("quality.min_mean: must be below quality.max_mean")
    if out["source"]["kind"] == "replay" and not out["source"]["replay_dir"]:
        raise ConfigError("source.replay_dir: required when source.kind is replay")
    if out["source"]["kind"] == "cameras" and len(out["source"]["cameras"]) < g["views"]:
        raise ConfigError(f"source.cameras: {len(out['source']['cameras'])} given, "
                          f"gate.views needs {g['views']} (or use fewer views)")
    cams = out["calibration"]["cameras"]
    if cams and len(cams) < g["views"]:
        raise ConfigError(f"calibration.cameras: {len(cams)} given, gate.views needs "
                          f"{g['views']} (or leave it empty for cam0, cam1, ...)")
    if len(set(cams)) != len(cams):
        raise ConfigError(f"calibration.cameras: names must differ: {cams}")
    r = out["relay"]
    if r["kind"] != "sim" and not r["port"]:
        raise ConfigError(f"relay.port: required for relay.kind {r['kind']!r}")
    if r["channel"] > r["channels"]:
        raise ConfigError(f"relay.channel: {r['channel']} is above relay.channels "
                          f"{r['channels']}")
    if r["board_pulse"] and r["kind"] != "modbus":
        raise ConfigError(f"relay.board_pulse: relay.kind {r['kind']!r} has no board-timed "
                          f"pulse (Modbus boards with a flash command only; an LCUS board "
                          f"must be powered from the USB line instead: docs/relays.md)")
    if r["reconnect_min_s"] > r["reconnect_max_s"]:
        raise ConfigError("relay.reconnect_min_s: must not be above relay.reconnect_max_s")
    gp = out["gpio"]
    if gp["enabled"]:
        used: dict[str, str] = {}
        for k in GPIO_PINS:
            if gp[k] is None:
                continue
            pid = _pin_id(gp[k])
            if pid in used:
                raise ConfigError(f"gpio.{k}: pin {gp[k]!r} is already gpio.{used[pid]}")
            used[pid] = k
        if not used:
            raise ConfigError("gpio.enabled: true, but no pin is set (gpio.illuminator_pin, "
                              "gpio.strobe_pin, gpio.door_pin or gpio.exit_pin)")
    from device.config_door import door_problem
    problem = door_problem(out)
    if problem:
        raise ConfigError(problem)
    sp = out["split"]
    if sp["mode"] == "split":
        for k in ("node0", "node1", "dir"):
            if not sp[k]:
                raise ConfigError(f"split.{k}: required when split.mode is split")
        for k in ("node0", "node1"):
            split_address(sp, k)
        if sp["node0"] == sp["node1"]:
            raise ConfigError(f"split.node1: {sp['node1']!r} is also split.node0 (two nodes, "
                              f"two links)")
    st = out["site"]
    if st["enabled"]:
        for k in ("site", "gate_id", "key_file", "ca_file", "cert_file", "cert_key_file",
                  "service_pub"):
            if not st[k]:
                raise ConfigError(f"site.{k}: required when site.enabled is true")
    return Config(out, path)


def split_address(sp, key: str) -> str:
    """The [split] node address ``key`` as a device.split.transport address (tcp:HOST:PORT,
    unix:PATH, serial:PORT@BAUD); a malformed one raises ConfigError naming the key."""
    v, t = str(sp[key] or ""), sp["transport"]
    if t == "tcp":
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"split.{key}: {v!r} is not host:port (transport tcp)")
        return f"tcp:{host}:{int(port)}"
    if t == "unix":
        if not v.strip():
            raise ConfigError(f"split.{key}: empty socket path (transport unix)")
        return f"unix:{v}"
    if "@" in v or "+" in v:
        raise ConfigError(f"split.{key}: {v!r}: give the port only; the speed is "
                          f"split.baudrate")
    return f"serial:{v}@{sp['baudrate']}"


def load_config(path: str | os.PathLike | None = None, **overrides) -> Config:
    """Read and validate a TOML file (None: defaults). ``overrides``: {section: {key: value}}."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"configuration file not found: {p}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: not valid TOML: {e}") from None
    for s, kv in overrides.items():
        raw.setdefault(s, {}).update(kv)
    return validate(raw, str(path) if path else None)
