"""binding_eval --cached (device/eval/binding_eval.py): an earlier run's rows and inputs scored
again only for the command that rendered them, and the command recorded (in the output and
in the signed file's numbers) says how to render them again."""
from __future__ import annotations

import json

import pytest

from device.eval import binding_eval as E

EARLIER = ("python -m device.eval.binding_eval --sensor xray --seed 11 --bona-fide 2 "
           "--mixed 0 --cache {npz} --out {json}")


def _row(seed):
    return {"kind": "bona_fide", "species": "bona_fide", "variant": "", "views_used": 3,
            "views_landmarks": 3, "score": 0.0, "cpu_ms": 1.0, "texture_cpu_ms": 0.0,
            "seed": seed}


def _earlier(tmp_path, command=EARLIER):
    """An earlier run's --out and --cache (two bona fide rows of seed 11; no inputs kept)."""
    js, npz = tmp_path / "earlier.json", tmp_path / "earlier.npz"
    summary = {"sensor": "xray", "seed": [11]}
    if command is not None:
        summary["command"] = command.format(npz=npz, json=js)
    js.write_text(json.dumps({"summary": summary, "rows": [_row(11), _row(11)]}))
    E.save_inputs(str(npz), [], 3)
    return str(js), str(npz)


def _run(tmp_path, seed="11", bona_fide="2", extra=()):
    js, npz = _earlier(tmp_path)
    out = tmp_path / "out.json"
    E.main(["--sensor", "xray", "--seed", seed, "--bona-fide", bona_fide, "--mixed", "0",
            *extra, "--cached", js, npz, "--out", str(out)])
    return json.loads(out.read_text())["summary"]


@pytest.mark.parametrize("seed,bona_fide,extra", [
    ("5", "2", ()),                       # another seed than the one rendered
    ("11", "1000", ()),                   # another count
    ("11", "2", ("--people", "7")),       # other people
])
def test_a_cache_of_another_command_is_refused(tmp_path, seed, bona_fide, extra, capsys):
    with pytest.raises(SystemExit):
        _run(tmp_path, seed, bona_fide, extra)
    assert "--cached" in capsys.readouterr().err


def test_a_cache_whose_command_is_unknown_is_refused(tmp_path, capsys):
    js, npz = _earlier(tmp_path, command=None)
    with pytest.raises(SystemExit):
        E.main(["--sensor", "xray", "--seed", "11", "--bona-fide", "2", "--mixed", "0",
                "--cached", js, npz, "--out", str(tmp_path / "out.json")])
    assert "--cached" in capsys.readouterr().err


def test_the_recorded_command_renders_the_cache_first(tmp_path):
    """What a --cached run records (its output's and the signed file's ``command``) is the
    rendering command that wrote the cache, then this one: runnable without the cache."""
    summary = _run(tmp_path)
    first, _, second = summary["command"].partition(" && ")
    assert "--cache " in first and "--cached" not in first and "--seed 11" in first
    assert second.startswith("python -m device.eval.binding_eval ") and "--cached" in second
