"""`palmgate record --out DIR`: bursts from the gate's own cameras into folders, for
`palmgate enroll USER --burst DIR` (enrolment at the terminal, in two steps)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from device.commands.common import add_config, err, load_cfg


def cmd_record(a) -> int:
    from device.sources.base import EndOfFrames, FrameError
    from device.sources.replay import write_burst
    cfg = load_cfg(a)
    if a.count < 1:
        raise ValueError(f"--count {a.count}: record at least one burst")
    out = Path(a.out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} is not empty: give a new folder per person")
    if cfg.source.kind == "synthetic":
        from device.synth.source import synthetic_source as factory
    else:
        from device.sources.factory import make_source as factory
    src = factory(cfg)
    done, faults = [], 0
    src.start()
    try:
        while len(done) < a.count:
            err(f"palmgate record: present your open palm, fingers apart, "
                f"({len(done) + 1}/{a.count}) ...")
            time.sleep(a.interval if done else 0)
            try:
                burst = src.capture_burst()
            except EndOfFrames:
                break
            except FrameError as e:
                faults += 1
                err(f"palmgate record: capture failed ({e}); again")
                if faults >= 3 * a.count:
                    raise RuntimeError(f"the cameras gave {faults} faults: check [source]") \
                        from e
                continue
            done.append(str(write_burst(out / f"burst_{len(done):02d}", burst)))
            err(f"palmgate record: burst {len(done)} written; take the hand away")
    finally:
        src.stop()
    print(json.dumps({"out": str(out), "bursts": done,
                      "next": f"palmgate enroll USER --burst {out} --config "
                              f"{cfg.path}"}))
    return 0 if len(done) == a.count else 1


def register(sub) -> None:
    sp = sub.add_parser("record", help="record bursts from the configured cameras (prompts "
                                       "on stderr) for `palmgate enroll USER --burst DIR`")
    add_config(sp)
    sp.add_argument("--out", required=True, help="a new folder for this person's bursts")
    sp.add_argument("--count", type=int, default=3, help="bursts (presentations) to record")
    sp.add_argument("--interval", type=float, default=2.0,
                    help="seconds between prompts (the hand is taken away and shown again)")
    sp.set_defaults(fn=cmd_record)
