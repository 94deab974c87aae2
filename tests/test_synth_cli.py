"""The dataset commands of `python -m tools.synth` write the standard layouts, deterministically."""
import hashlib
import json
import subprocess
import sys

from device.sources.layout import scan
from tools.synth.__main__ import main


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_palms_deterministic_for_a_seed(tmp_path):
    args = ["palms", "--subjects", "3", "--sessions", "2", "--samples", "2", "--seed", "7"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    refs = scan(tmp_path / "a")
    assert [(r.subject, r.session, r.sample) for r in refs][:3] == [
        ("0000", 1, 1), ("0000", 1, 2), ("0000", 2, 1)]
    assert len(refs) == 12
    meta = json.loads((tmp_path / "a" / "identities.json").read_text())
    assert set(meta["identities"]) == {"0000", "0001", "0002"}
    assert main(args[:-1] + ["8", "--out", str(tmp_path / "c")]) == 0
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_hands_views_and_keypoints(tmp_path):
    assert main(["hands", "--out", str(tmp_path), "--subjects", "1", "--sessions", "2",
                 "--samples", "3", "--views", "3", "--seed", "1"]) == 0
    refs = scan(tmp_path)
    assert len(refs) == 6
    for r in refs:
        kp = json.loads(r.path.with_suffix(".json").read_text())
        assert len(kp["valleys"]) >= 3 and len(kp["palm_centre"]) == 2


def test_liveness_and_sr_pairs_and_sheet(tmp_path):
    for sensor in ("xray", "nir"):
        d = tmp_path / sensor
        assert main(["liveness", "--sensor", sensor, "--out", str(d), "--bona-fide", "2",
                     "--per-species", "1", "--seed", "0"]) == 0
        assert len(list((d / "bona_fide").glob("*.png"))) == 2
        species = sorted(p.name for p in (d / "attack").iterdir())
        assert len(species) >= 3
        assert main(["sr-pairs", "--sensor", sensor, "--out", str(tmp_path / f"sr_{sensor}"),
                     "--n", "2", "--seed", "0"]) == 0
    assert main(["sheet", str(tmp_path / "xray"), "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["sheet", str(tmp_path / "missing"), "--out", str(tmp_path / "s.png")]) == 2
    assert "no images" in capsys.readouterr().err


def test_palmgate_help():
    out = subprocess.run([sys.executable, "-m", "device.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "palmgate" in out and "demo" in out
