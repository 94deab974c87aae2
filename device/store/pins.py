"""Users' keypad IDs and PINs, beside their templates in the sealed store.

At the keypad a person types their keypad ID, ``#``, their PIN, ``#`` (``device.relays.keypad``)
-- the way access terminals take "user ID + password". The ID claims its holder; the PIN,
checked against that one user's hash, confirms the claim; the palm that follows is then
verified 1:1 against that user (``device.gate.door``). One table:

    pins(lookup, user_id, nonce, sealed)   lookup = HMAC of the keypad ID under a key of the
                                           store's (the ID is found without decrypting every
                                           row; the file shows no ID); sealed JSON {user_id,
                                           keypad_id, salt, n, r, p, hash}: scrypt
                                           (``cryptography``'s Scrypt; a 16-byte random salt
                                           per PIN, N = 2**14, r = 8, p = 1, 32 bytes) of the
                                           PIN's digits

sealed with the store's AES-GCM key (associated data: the lookup and the user id), so the file
shows no hash either, and a row cannot be moved to another user. Checking a PIN costs one
scrypt, whoever typed it: an unknown ID costs the same as a wrong PIN, so the time tells
nothing. A user has at most one ID and PIN; an ID belongs to one user. The table is made on
first use inside a store transaction; deleting a user deletes their row (foreign key, ON
DELETE CASCADE). Writes go through ``store.transaction()``: the caller adds the audit record to
the same transaction. The PIN itself is never stored, logged or audited.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os

from device.store.store import StoreError

MIN_DIGITS, MAX_DIGITS = 4, 8
ID_DIGITS = 8                               # the longest keypad ID
SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_LEN = 2 ** 14, 8, 1, 32
_DUMMY_SALT = bytes(16)


def check_pin(pin: str) -> str:
    """The PIN if it is 4 to 8 digits, else a :class:`StoreError` saying so."""
    if not isinstance(pin, str) or not pin.isascii() or not pin.isdigit() or \
            not MIN_DIGITS <= len(pin) <= MAX_DIGITS:
        raise StoreError(f"a PIN is {MIN_DIGITS} to {MAX_DIGITS} digits (0-9), the keys of the "
                         f"keypad")
    return pin


def check_keypad_id(keypad_id) -> int:
    """The keypad ID as an int (1 to 8 digits, not 0), else a :class:`StoreError`."""
    s = str(keypad_id)
    if isinstance(keypad_id, bool) or not s.isascii() or not s.isdigit() or \
            not 1 <= len(s.lstrip("0") or "0") <= ID_DIGITS or int(s) == 0:
        raise StoreError(f"--keypad-id {keypad_id!r}: a keypad ID is a number of 1 to "
                         f"{ID_DIGITS} digits, not 0")
    return int(s)


def pin_hash(pin: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R,
             p: int = SCRYPT_P) -> bytes:
    """scrypt of the PIN's digits: a pure function of its arguments."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
    return Scrypt(salt=salt, length=HASH_LEN, n=n, r=r, p=p).derive(pin.encode())


def hash_record(user_id: str, keypad_id: int, pin: str) -> dict:
    salt = os.urandom(16)
    return {"user_id": user_id, "keypad_id": int(keypad_id), "salt": salt.hex(),
            "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "hash": pin_hash(pin, salt).hex()}


def matches(rec: dict, pin: str) -> bool:
    want = bytes.fromhex(rec["hash"])
    got = pin_hash(pin, bytes.fromhex(rec["salt"]), int(rec["n"]), int(rec["r"]),
                   int(rec["p"]))
    return hmac.compare_digest(want, got)


class Pins:
    """``Pins(store)``: the keypad IDs and PINs of the users of ``store``."""

    def __init__(self, store):
        self.st = store
        have = store.conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND "
                                  "name='pins'").fetchone()
        if have is None:                        # schema under the state MAC: in a transaction
            with store.transaction():
                store.conn.execute("CREATE TABLE IF NOT EXISTS pins (lookup BLOB PRIMARY KEY, "
                                   "user_id TEXT NOT NULL UNIQUE REFERENCES users(user_id) "
                                   "ON DELETE CASCADE, nonce BLOB NOT NULL, sealed BLOB NOT "
                                   "NULL)")

    def _lookup(self, keypad_id: int) -> bytes:
        msg = f"palmgate/keypad-id|{int(keypad_id)}".encode()
        return hmac.new(self.st._k_tag, msg, hashlib.sha256).digest()

    @staticmethod
    def _ad(lookup: bytes, user_id: str) -> bytes:
        return b"palmgate/pin|" + lookup + b"|" + user_id.encode()

    def _open(self, lk, uid, nonce, sealed) -> dict:
        rec = json.loads(self.st._open(bytes(nonce), bytes(sealed), self._ad(bytes(lk), uid),
                                       f"PIN of {uid!r}"))
        if rec.get("user_id") != uid or self._lookup(rec.get("keypad_id", -1)) != bytes(lk):
            from device.store.store import TamperedError
            raise TamperedError(f"PIN row of {uid!r} is not its own")
        return rec

    def _row(self, where: str, arg):
        return self.st.conn.execute(f"SELECT lookup, user_id, nonce, sealed FROM pins WHERE "
                                    f"{where}=?", (arg,)).fetchone()

    def _records(self) -> list[dict]:
        rows = self.st.conn.execute("SELECT lookup, user_id, nonce, sealed FROM pins ORDER BY "
                                    "user_id").fetchall()
        return [self._open(*r) for r in rows]

    def _write(self, rec: dict) -> None:
        uid, lk = rec["user_id"], self._lookup(rec["keypad_id"])
        nonce, sealed = self.st._seal(json.dumps(rec, sort_keys=True).encode(),
                                      self._ad(lk, uid))
        with self.st.transaction():
            self.st.conn.execute("DELETE FROM pins WHERE user_id=?", (uid,))
            self.st.conn.execute("INSERT INTO pins(lookup, user_id, nonce, sealed) "
                                 "VALUES(?,?,?,?)", (lk, uid, nonce, sealed))

    # ------------------------------------------------------------------ changes
    def set_pin(self, user_id: str, pin: str, keypad_id=None) -> int:
        """Give ``user_id`` the PIN ``pin`` under keypad ID ``keypad_id`` (None: the ID they
        have). Returns the keypad ID. An ID another user has is refused."""
        check_pin(pin)
        if self.st.get_user(user_id) is None:
            raise StoreError(f"no user {user_id!r} (enrol them first: palmgate enroll "
                             f"{user_id} ...)")
        if keypad_id is None:
            keypad_id = self.keypad_id(user_id)
            if keypad_id is None:
                raise StoreError(f"{user_id!r} has no keypad ID yet: give one with "
                                 f"--keypad-id N (the number they type before their PIN)")
        keypad_id = check_keypad_id(keypad_id)
        r = self._row("lookup", self._lookup(keypad_id))
        if r is not None and r[1] != user_id:
            raise StoreError(f"keypad ID {keypad_id} already belongs to {r[1]!r}: give "
                             f"another --keypad-id")
        self._write(hash_record(user_id, keypad_id, pin))
        return keypad_id

    def remove_pin(self, user_id: str) -> bool:
        with self.st.transaction():
            n = self.st.conn.execute("DELETE FROM pins WHERE user_id=?", (user_id,)).rowcount
        return n > 0

    # ------------------------------------------------------------------ look-ups
    def keypad_id(self, user_id: str) -> int | None:
        r = self._row("user_id", user_id)
        return None if r is None else int(self._open(*r)["keypad_id"])

    def has_pin(self, user_id: str) -> bool:
        return self._row("user_id", user_id) is not None

    def holders(self) -> int:
        return int(self.st.conn.execute("SELECT COUNT(*) FROM pins").fetchone()[0])

    def check(self, keypad_id, pin: str) -> tuple[str | None, bool]:
        """(the holder of ``keypad_id`` or None, whether ``pin`` is theirs). One scrypt
        whatever the outcome: an unknown ID or a malformed PIN hashes against a dummy salt."""
        try:
            r = self._row("lookup", self._lookup(check_keypad_id(keypad_id)))
        except StoreError:
            r = None
        try:
            well_formed = bool(check_pin(pin))
        except StoreError:
            well_formed = False
        rec = None if r is None else self._open(*r)
        if rec is None or not well_formed:
            pin_hash("0" * MIN_DIGITS, _DUMMY_SALT)         # the same time as a real check
            return (None if rec is None else rec["user_id"]), False
        return rec["user_id"], matches(rec, pin)

    # ------------------------------------------------------------------ backup
    def export(self) -> list[dict]:
        """The ID and hash records (salted scrypt; never a PIN), for the sealed backup."""
        return self._records()

    def load(self, records) -> int:
        for rec in records:
            if self.st.get_user(rec["user_id"]) is None:
                raise StoreError(f"PIN of unknown user {rec['user_id']!r} in the backup")
            self._write({k: rec[k] for k in ("user_id", "keypad_id", "salt", "n", "r", "p",
                                             "hash")})
        return len(records)
