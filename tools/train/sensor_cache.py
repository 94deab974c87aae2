"""SR outputs computed once and kept on disk: a fine-tune round's pool, the validation and the
held-out sets go through the same SR file again and again (the pool before the round, the
threshold choice, fp32 and int8 scoring, a rerun), and SR costs about 10 ms of CPU a frame
against about 1 ms for the liveness model.  The outputs are the unrounded float SR images as
float16 for a training pool (what the rounds train on) or float32 for scoring (exactly what
the runtime feeds the liveness model), one ``.npy`` file per (SR file, captures, dtype), keyed
by the SR file's sha256 and a hash of the capture bytes, so a changed SR file or a changed set
is never served from the cache."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tools.train.sensor_scoring import run_liveness, run_sr


class SRCache:
    """SR outputs of one SR file (``sess`` the onnxruntime session of ``sr_path``) under
    ``folder``."""

    def __init__(self, sess, sr_path, folder):
        from tools.manifest import sha256_file

        self.sess = sess
        self.sr_sha = sha256_file(sr_path)[:16]
        self.folder = Path(folder)

    def path(self, caps: np.ndarray, dtype=np.float16) -> Path:
        h = hashlib.sha1(np.ascontiguousarray(caps).tobytes()).hexdigest()[:16]
        return self.folder / f"sr_{self.sr_sha}_{h}_{len(caps)}_{np.dtype(dtype).name}.npy"

    def outputs(self, caps: np.ndarray, dtype=np.float16) -> np.ndarray:
        """SR outputs (N, 256, 256) of uint8 captures (N, 128, 128) as ``dtype``."""
        if len(caps) == 0:
            return np.zeros((0,) + (2 * caps.shape[1], 2 * caps.shape[2]), dtype)
        p = self.path(caps, dtype)
        if p.exists():
            return np.load(p)
        out = run_sr(self.sess, caps, as_u8=False, dtype=dtype)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(p)
        return out

    def scores(self, lv_sess, caps: np.ndarray) -> np.ndarray:
        """p(live) of captures through SR (cached, float32 as the runtime has it) ->
        liveness."""
        return run_liveness(lv_sess, self.outputs(caps, np.float32)) if len(caps) else \
            np.zeros(0)
