"""What the recognition training stages share (tools/train/recognition.py runs them;
recognition_fusion.py and recognition_export.py read the same data): the default work folder,
the log line, and the Tongji training / validation data."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

WORK = Path("/tmp/palmgate_recognition")


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def load_data(work: Path = WORK):
    """Tongji inputs (cached int8), labels, sessions and the train / val masks."""
    from device.recognition.learned import load_bank
    from tools.train.realdata import split_subjects, tongji
    from tools.train.recognition_cells import inputs_u8

    ps = tongji()
    tr, va = split_subjects(len(ps.subjects), 0.2, 0)
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "tongji_inputs.npy"
    if cache.exists():
        x = np.load(cache)
    else:
        bank, beta = load_bank()
        x = inputs_u8(ps.images, bank, beta, log)
        np.save(cache, x)
    return x, ps.labels, ps.sessions, np.isin(ps.labels, tr), np.isin(ps.labels, va)
