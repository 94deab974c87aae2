"""Settings of the sensor-branch training (tools/train/sensor.py): the profiles ``quick`` and
``full`` -- data files tools/train/profiles/sensor_<profile>.toml, read into ``CONFIG`` -- the
seeds each split may use, the attack species, the SR layout and the order of the fine-tune
rounds."""
from __future__ import annotations

import tomllib
from pathlib import Path

from device.models.sensor_branch import SENSORS
from device.synth.attacks import SPECIES as _ENGINE_SPECIES

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
SPLITS = ("train", "val", "test")

# the seeds of the synthetic sets of each split: training, validation and held-out test sets
# never share a seed
LIVENESS_SEEDS = {"train": (1001, 1002, 1003, 1004, 1005, 1006, 1007, 1010, 1011, 1012,
                            1013, 1014, 1015, 1016, 1017, 1021, 1022),
                  "val": (2002, 2003, 2004),
                  "test": (3003, 3004, 3721, 3958, 8484, 8485, 6464, 6565,
                           7272)}
SR_SEEDS = {"train": 1101, "test": 3103}
REAL_PAIR_SEED = 4104      # the random crops of the real NIR SR training pairs
# the attack species of each sensor: the synthesis engine's (device/synth/attacks.py), one list
SPECIES = {sensor: tuple(species) for sensor, species in _ENGINE_SPECIES.items()}
# the fine-tune rounds after the first (``finetune``), in order: each starts from the model of
# the one before
# (the composite-species round ``finetune5`` is not one of them: it was measured and not shipped,
# and lives in the ``species`` profile for --continue-rounds only)
LATER_ROUNDS = ("finetune2", "finetune3", "finetune4")
SR_ARCH = {"c1": 16, "c2": 32, "mapping_layers": 2}


def log(msg: str) -> None:
    print(msg, flush=True)


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def _code_values(cfg: dict) -> dict:
    """A profile as read from TOML -> the values the code works with: every data set
    (``liveness``) and every array inside a fine-tune round (the keys ``finetune*``) a tuple;
    the splits of ``real_subjects`` and the sensors of ``liveness_crop`` and
    ``liveness_config`` that the file leaves out None (TOML has no null)."""
    cfg["liveness"] = {sensor: {split: [tuple(spec) for spec in specs]
                                for split, specs in splits.items()}
                       for sensor, splits in cfg["liveness"].items()}
    for key in cfg:
        if key.startswith("finetune"):
            cfg[key] = {sensor: {k: _tuples(v) for k, v in ft.items()}
                        for sensor, ft in cfg[key].items()}
    for split in SPLITS:
        cfg.setdefault("real_subjects", {}).setdefault(split, None)
    for key in ("liveness_crop", "liveness_config"):
        for sensor in SENSORS:
            cfg.setdefault(key, {}).setdefault(sensor, None)
    return cfg


def load_profile(name: str, folder: Path = PROFILES_DIR) -> dict:
    """The profile ``name`` of ``folder/sensor_<name>.toml``."""
    with open(Path(folder) / f"sensor_{name}.toml", "rb") as fh:
        return _code_values(tomllib.load(fh))


# synthetic liveness sets of each split, real NIR palms per split, SR pairs, step counts, the
# fine-tune rounds ...: see the profile files
CONFIG = {name: load_profile(name) for name in ("quick", "full", "species", "print",
                                                 "nirworld", "placed", "xaug", "xaugquick",
                                                 "nirprint")}
