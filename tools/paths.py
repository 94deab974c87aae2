"""Where the project finds the shared, read-only data (never copied into git)."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"


def shared_data_dir() -> Path:
    """``$PALMGATE_DATA`` if set, else ``../shared/data`` beside the project root."""
    env = os.environ.get("PALMGATE_DATA")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "data"


def real_dir(name: str) -> Path:
    """A real research set, e.g. ``real_dir('tongji')``; a clear error when it is absent."""
    d = shared_data_dir() / "real" / name
    if not d.is_dir():
        raise FileNotFoundError(
            f"real data set {name!r} not found at {d}; set PALMGATE_DATA to the folder holding real/")
    return d
