"""``python -m tools.stress_store attacks``: the insider and power-cut cases of issue 18 (items
3 and 9b) tried against whatever ``device`` is importable -- this software, or an older
checkout on PYTHONPATH for the "before" figures. Each case says whether the store noticed
(``detected``) or what the attacker got; the integrity files beside the database (the old
``<db>.seal``, the new ``<db>.generation``) are handled alike, by name pattern.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SIDE = (".seal", ".generation")         # integrity files beside the database, old and new


def _side(db: Path) -> list[Path]:
    return [db.with_name(db.name + s) for s in SIDE if db.with_name(db.name + s).exists()]


def _tmpl(rng):
    from device.protect.core import enrol
    x = rng.standard_normal((49, 16))
    return enrol(x / np.linalg.norm(x, axis=1, keepdims=True))


def _open(db, key):
    from device.store.store import TemplateStore
    try:
        return TemplateStore(db, device_key=key), None
    except Exception as e:      # noqa: BLE001 - what the store says is the result
        return None, f"{type(e).__name__}: {str(e)[:160]}"


def _fresh(d: Path, key: bytes, rng) -> Path:
    from device.store.store import TemplateStore
    d.mkdir(parents=True)
    db = d / "t.db"
    with TemplateStore(db, device_key=key) as s:
        s.enrol("alice", [_tmpl(rng)])
        s.enrol("bob", [_tmpl(rng)])
    return db


def revoked_rows_put_back(d, key, rng) -> dict:
    db = _fresh(d, key, rng)
    c = sqlite3.connect(db)
    rows = c.execute("SELECT * FROM templates WHERE user_id='bob'").fetchall()
    user = c.execute("SELECT * FROM users WHERE user_id='bob'").fetchone()
    tag = c.execute("SELECT value FROM meta WHERE name='content_tag'").fetchone()[0]
    c.close()
    s, _ = _open(db, key)
    s.delete_user("bob")
    s.close()
    for f in _side(db):
        if f.suffix == ".seal":
            f.unlink()                  # the old software: deleting it disables the check
    c = sqlite3.connect(db)
    c.execute("INSERT INTO users VALUES(?,?,?,?)", user)
    c.executemany("INSERT INTO templates VALUES(?,?,?,?,?)", rows)
    c.execute("UPDATE meta SET value=? WHERE name='content_tag'", (tag,))
    c.commit()
    c.close()
    s, err = _open(db, key)
    if s is None:
        return {"detected": True, "said": err}
    back = s.get_user("bob") is not None
    s.close()
    return {"detected": False, "revoked_user_listed_again": back}


def attempts_replayed(d, key, rng) -> dict:
    from device.store.attempts import AttemptLimiter
    db = _fresh(d, key, rng)
    s, _ = _open(db, key)
    lim = AttemptLimiter(store=s)
    lim.record(False, now=1000)
    one = bytes(s.conn.execute("SELECT value FROM meta WHERE name='attempts'").fetchone()[0])
    for _ in range(4):
        lim.record(False, now=1000)
    s.close()
    for f in _side(db):
        if f.suffix == ".seal":
            f.unlink()
    c = sqlite3.connect(db)
    c.execute("UPDATE meta SET value=? WHERE name='attempts'", (one,))
    c.commit()
    c.close()
    s, err = _open(db, key)
    if s is None:
        return {"detected": True, "said": err}
    n = AttemptLimiter(store=s).failures
    s.close()
    return {"detected": n == 5, "failures_after_replay": n, "failures_before": 5}


def database_rolled_back(d, key, rng) -> dict:
    """An older copy of the database file put back; the files beside it left as they are,
    except a seal (the old software's), which the attacker deletes."""
    db = _fresh(d, key, rng)
    old = db.read_bytes()
    s, _ = _open(db, key)
    s.set_enabled("bob", False)
    s.close()
    db.write_bytes(old)
    for f in _side(db):
        if f.suffix == ".seal":
            f.unlink()
    s, err = _open(db, key)
    if s is None:
        return {"detected": True, "said": err}
    on = s.get_user("bob").enabled
    s.close()
    return {"detected": False, "disabled_user_enabled_again": on}


def integrity_file_deleted(d, key, rng) -> dict:
    """The integrity file beside the database deleted, then a byte of a record changed."""
    db = _fresh(d, key, rng)
    files = _side(db)
    for f in files:
        f.unlink()
    data = bytearray(db.read_bytes())
    i = data.index(b"append-only") + 2
    data[i] ^= 1                            # the schema text of the append-only trigger
    db.write_bytes(bytes(data))
    s, err = _open(db, key)
    if s is None:
        return {"detected": True, "deleted": [f.name for f in files], "said": err}
    s.close()
    return {"detected": False, "deleted": [f.name for f in files]}


def stale_after_power_cut(d, key, rng) -> dict:
    """A power cut right after a clean close / a commit: the file beside the database holds
    the state of the previous close (the old seal was written without fsync), or the counter
    write did not happen. The store must still open (nothing was tampered with)."""
    db = _fresh(d, key, rng)
    stale = {f.name: f.read_bytes() for f in _side(db)}
    s, _ = _open(db, key)
    s.set_enabled("bob", False)
    s.close()
    for name, b in stale.items():
        (d / name).write_bytes(b)           # what reached the disk before the cut
    s, err = _open(db, key)
    if s is None:
        return {"opens": False, "said": err}
    s.close()
    return {"opens": True}


def full_disk_at_start(d, key, rng) -> dict:
    """A real full file system (tmpfs in a private mount namespace): what the store says."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        return {"skipped": "no unprivileged mount namespace (unshare -rm)"}
    db = _fresh(d / "state", key, rng)
    mnt = d / "mnt"
    mnt.mkdir()
    code = ("import sys; from device.store.store import TemplateStore\n"
            "try:\n"
            f"    TemplateStore({str(mnt / 't.db')!r}, device_key=bytes.fromhex({key.hex()!r}))\n"
            "    print('opened')\n"
            "except Exception as e:\n"
            "    print(type(e).__name__ + ': ' + str(e)[:160])\n")
    script = (f"mount -t tmpfs -o size=512k tmpfs {mnt} && cp -a {db.parent}/. {mnt}/ && "
              f"(dd if=/dev/zero of={mnt}/filler bs=4k 2>/dev/null || true) && "
              f"{sys.executable} -c \"$CODE\"")
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                       env=dict(os.environ, CODE=code), timeout=120)
    said = (r.stdout.strip() or r.stderr.strip())[-300:]
    return {"said": said, "says_disk_full": "disk full" in said.lower() or
            "DiskFull" in said, "says_corrupt": "corrupt" in said.lower()}


CASES = [revoked_rows_put_back, attempts_replayed, database_rolled_back,
         integrity_file_deleted, stale_after_power_cut, full_disk_at_start]


def run_attacks(seed: int = 0, root: Path | None = None) -> dict:
    root = Path(root or tempfile.mkdtemp(prefix="palmgate-attacks-"))
    rng = np.random.default_rng(seed)
    key = os.urandom(32)
    out = {"mode": "attacks", "root": str(root)}
    for case in CASES:
        out[case.__name__] = case(root / case.__name__, key, rng)
    return out
