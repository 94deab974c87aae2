"""Users' keypad PINs, beside their templates in the sealed store.

A PIN typed on the keypad claims its holder: the palm that follows is verified 1:1 against
that user (``device.gate.door``). Each PIN is kept only as a salted slow hash:

    pins(user_id, nonce, sealed)   sealed JSON {user_id, salt, n, r, p, hash}: scrypt
                                   (``cryptography``'s Scrypt; 16-byte random salt per PIN,
                                   N = 2**14, r = 8, p = 1, 32 bytes) of the PIN's digits

sealed with the store's AES-GCM key (associated data: the user id), so the file shows no
hash either, and a row cannot be moved to another user. A PIN names one user: setting a PIN
another user already has is refused, so finding the holder of a typed PIN means checking it
against every user who has one (one scrypt each; the cost is in docs/install.md). The table is
made on first use inside a store transaction; deleting a user deletes their PIN (foreign key,
ON DELETE CASCADE). Writes go through ``store.transaction()``: the caller adds the audit
record to the same transaction. The PIN itself is never stored, logged or audited.
"""
from __future__ import annotations

import hmac
import json
import os

from device.store.store import StoreError

MIN_DIGITS, MAX_DIGITS = 4, 8
SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_LEN = 2 ** 14, 8, 1, 32


def check_pin(pin: str) -> str:
    """The PIN if it is 4 to 8 digits, else a :class:`StoreError` saying so."""
    if not isinstance(pin, str) or not pin.isascii() or not pin.isdigit() or \
            not MIN_DIGITS <= len(pin) <= MAX_DIGITS:
        raise StoreError(f"a PIN is {MIN_DIGITS} to {MAX_DIGITS} digits (0-9), the keys of the "
                         f"keypad")
    return pin


def pin_hash(pin: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R,
             p: int = SCRYPT_P) -> bytes:
    """scrypt of the PIN's digits: a pure function of its arguments."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
    return Scrypt(salt=salt, length=HASH_LEN, n=n, r=r, p=p).derive(pin.encode())


def hash_record(user_id: str, pin: str) -> dict:
    salt = os.urandom(16)
    return {"user_id": user_id, "salt": salt.hex(), "n": SCRYPT_N, "r": SCRYPT_R,
            "p": SCRYPT_P, "hash": pin_hash(pin, salt).hex()}


def matches(rec: dict, pin: str) -> bool:
    want = bytes.fromhex(rec["hash"])
    got = pin_hash(pin, bytes.fromhex(rec["salt"]), int(rec["n"]), int(rec["r"]),
                   int(rec["p"]))
    return hmac.compare_digest(want, got)


class Pins:
    """``Pins(store)``: the keypad PINs of the users of ``store``."""

    def __init__(self, store):
        self.st = store
        have = store.conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND "
                                  "name='pins'").fetchone()
        if have is None:                        # schema under the state MAC: in a transaction
            with store.transaction():
                store.conn.execute("CREATE TABLE IF NOT EXISTS pins (user_id TEXT PRIMARY KEY "
                                   "REFERENCES users(user_id) ON DELETE CASCADE, nonce BLOB "
                                   "NOT NULL, sealed BLOB NOT NULL)")

    @staticmethod
    def _ad(user_id: str) -> bytes:
        return f"palmgate/pin|{user_id}".encode()

    def _records(self) -> list[dict]:
        out = []
        for uid, nonce, sealed in self.st.conn.execute(
                "SELECT user_id, nonce, sealed FROM pins ORDER BY user_id"):
            rec = json.loads(self.st._open(bytes(nonce), bytes(sealed), self._ad(uid),
                                           f"PIN of {uid!r}"))
            if rec.get("user_id") != uid:
                from device.store.store import TamperedError
                raise TamperedError(f"PIN row of {uid!r} is not its own")
            out.append(rec)
        return out

    def _write(self, rec: dict) -> None:
        uid = rec["user_id"]
        nonce, sealed = self.st._seal(json.dumps(rec, sort_keys=True).encode(), self._ad(uid))
        with self.st.transaction():
            self.st.conn.execute("INSERT INTO pins(user_id, nonce, sealed) VALUES(?,?,?) ON "
                                 "CONFLICT(user_id) DO UPDATE SET nonce=excluded.nonce, "
                                 "sealed=excluded.sealed", (uid, nonce, sealed))

    # ------------------------------------------------------------------ changes
    def set_pin(self, user_id: str, pin: str) -> None:
        """Give ``user_id`` the PIN ``pin`` (replacing theirs). A PIN another user holds is
        refused, without saying whose."""
        check_pin(pin)
        if self.st.get_user(user_id) is None:
            raise StoreError(f"no user {user_id!r} (enrol them first: palmgate enroll "
                             f"{user_id} ...)")
        if any(r["user_id"] != user_id and matches(r, pin) for r in self._records()):
            raise StoreError("another user has this PIN: choose another one (a PIN names "
                             "one user)")
        self._write(hash_record(user_id, pin))

    def remove_pin(self, user_id: str) -> bool:
        with self.st.transaction():
            n = self.st.conn.execute("DELETE FROM pins WHERE user_id=?", (user_id,)).rowcount
        return n > 0

    # ------------------------------------------------------------------ look-ups
    def has_pin(self, user_id: str) -> bool:
        return self.st.conn.execute("SELECT 1 FROM pins WHERE user_id=?",
                                    (user_id,)).fetchone() is not None

    def holders(self) -> int:
        return int(self.st.conn.execute("SELECT COUNT(*) FROM pins").fetchone()[0])

    def find(self, pin: str) -> str | None:
        """The user whose PIN this is, or None (a malformed PIN is nobody's)."""
        try:
            check_pin(pin)
        except StoreError:
            return None
        for rec in self._records():
            if matches(rec, pin):
                return rec["user_id"]
        return None

    # ------------------------------------------------------------------ backup
    def export(self) -> list[dict]:
        """The hash records (salted scrypt; never a PIN), for the unit's sealed backup."""
        return self._records()

    def load(self, records) -> int:
        for rec in records:
            if self.st.get_user(rec["user_id"]) is None:
                raise StoreError(f"PIN of unknown user {rec['user_id']!r} in the backup")
            self._write({k: rec[k] for k in ("user_id", "salt", "n", "r", "p", "hash")})
        return len(records)
