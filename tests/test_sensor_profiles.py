"""The sensor-training profiles are data files (tools/train/profiles/sensor_<profile>.toml):
they must load to exactly the CONFIG the code held before they moved out of it (frozen in
tests/fixtures/sensor_config_ed915af.txt as a Python literal, so tuples stay tuples)."""
import ast
from pathlib import Path

FROZEN = Path(__file__).parent / "fixtures" / "sensor_config_ed915af.txt"


def _same(a, b, path="CONFIG"):
    """Equal values of the same types (3 is not 3.0, a list not a tuple) and, inside a
    profile's tables, the same key order (the round configs go into reports as written)."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(set(a) ^ set(b))}"
        if path.count("[") >= 3:
            assert list(a) == list(b), f"{path}: key order {list(a)} != {list(b)}"
        for k in a:
            _same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


# keys added to the profiles after the freeze (issue 21: the composite-species round and the
# leave-one-species-out recipe); everything else must stay as frozen
ADDED = {"quick": ("loso",)}


def _frozen_part(cfg: dict) -> dict:
    return {name: {k: v for k, v in prof.items() if k not in ADDED.get(name, ())}
            for name, prof in cfg.items()
            if name not in ("species", "print", "nirworld", "placed", "xaug",
                            "xaugquick", "nirprint")}   # finetune5 / 8 / 10 / 14 / 15


def test_profiles_load_to_the_config_the_code_used():
    from tools.train.sensor_config import CONFIG, load_profile
    frozen = ast.literal_eval(FROZEN.read_text())
    _same(_frozen_part(CONFIG), frozen)
    for name in ("quick", "full"):
        _same(_frozen_part({name: load_profile(name)})[name], frozen[name], f"CONFIG[{name!r}]")
    assert CONFIG["species"]["finetune5"]["xray"]["mine"] == (1013, 1500, 400)
    assert "finetune5" not in CONFIG["full"]          # a full run still makes the shipped files
    ft8 = CONFIG["print"]["finetune8"]["nir"]
    assert ft8["pairs"] == (("printed_photo", 1015, 3000),) and ft8["max_bpcer"] == 0.005
    assert CONFIG["print"]["liveness"]["nir"]["test"] == [(8484, 1000, 400)]
    ft10 = CONFIG["nirworld"]["finetune10"]["nir"]
    assert ft10["mine"] == (1016, 2000, 600) and ft10["max_bpcer"] == 0.005
    assert CONFIG["nirworld"]["liveness"]["nir"]["test"] == [(7272, 1000, 400)]
    ft13 = CONFIG["nirworld"]["finetune13"]["nir"]
    assert ft13["widen"][0] == (12, True) and ft13["max_bpcer"] == 0.005
    ft16 = CONFIG["nirprint"]["finetune16"]["nir"]
    assert ft16["mine"] == (1022, 3000, 1000) and ft16["max_bpcer"] == 0.005
    assert (1021, 3000, 1000) in ft16["extra"] and "widen" not in ft16   # same model size
    assert CONFIG["nirprint"]["finetune16q"]["nir"]["steps"] <= 300    # the quick round


def test_sensor_module_reads_the_same_config():
    from tools.train import sensor, sensor_config
    assert sensor.CONFIG is sensor_config.CONFIG
    full = sensor.CONFIG["full"]
    assert full["finetune4"]["xray"]["pairs"] == (("photo", 1011, 4000), ("photo", 1012, 4000))
    assert full["finetune4_wide"]["xray"]["widen"][-1] == (96, False)
    assert full["real_subjects"] == {"train": None, "val": None, "test": None}
    assert full["liveness"]["xray"]["val"][-1] == (2004, 1000, 600)
    assert sensor.CONFIG["quick"]["liveness_config"] == {"xray": {"stem": "s2"}, "nir": None}


def test_a_profile_file_left_out_values_read_as_none(tmp_path):
    from tools.train.sensor_config import load_profile
    (tmp_path / "sensor_x.toml").write_text(
        "sr_iters = 1\n[liveness.nir]\ntrain = [[1001, 2, 1]]\n"
        "[finetune.nir]\nmine = [1003, 2, 1]\nextra = [[1004, 1, 1]]\n")
    cfg = load_profile("x", tmp_path)
    assert cfg["liveness"]["nir"]["train"] == [(1001, 2, 1)]
    assert cfg["finetune"]["nir"] == {"mine": (1003, 2, 1), "extra": ((1004, 1, 1),)}
    assert cfg["real_subjects"] == {"train": None, "val": None, "test": None}
    assert cfg["liveness_crop"] == cfg["liveness_config"] == {"xray": None, "nir": None}
