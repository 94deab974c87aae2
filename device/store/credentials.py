"""Users' cards and access modes, beside their templates in the sealed store.

Two tables of the store's database, made on first use (``CREATE TABLE IF NOT EXISTS``):

    credentials(lookup, user_id, nonce, sealed)   a card: sealed JSON {user_id, kind, format,
                                                  facility, number}; lookup = HMAC of the
                                                  card under a key of the store's, so a card
                                                  is found without decrypting every row and
                                                  the file shows no card number
    access_modes(user_id, nonce, sealed)          "palm" (default), "card+palm" or
                                                  "pin+palm" (PINs: device.store.pins)

Both are sealed with the store's AES-GCM key; the associated data binds each row to its user
(and a card row to its lookup), so rows cannot be swapped between users. Deleting a user
deletes their rows (foreign key, ON DELETE CASCADE). The store's clean-close seal covers these
tables with the rest of the file; the per-row content tag (``TemplateStore.verify``) covers
users and templates only, so a row deleted while the store is open makes a card unknown (a
deny), never a card of someone else.
"""
from __future__ import annotations

import hashlib
import hmac
import json

from device.store.store import StoreError

MODES = ("palm", "card+palm", "pin+palm")
KINDS = ("card",)


class Credentials:
    """``Credentials(store)``: cards and access modes of the users of ``store``."""

    def __init__(self, store):
        self.st = store
        c = store.conn
        have = {r[0] for r in c.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name IN "
            "('credentials', 'access_modes')")}
        if len(have) < 2:           # the tables are part of the sealed state: made in a
            with store.transaction():   # store transaction (schema under the state MAC)
                self._create(c)

    @staticmethod
    def _create(c) -> None:
        c.execute("CREATE TABLE IF NOT EXISTS credentials (lookup BLOB PRIMARY KEY, "
                  "user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE, "
                  "nonce BLOB NOT NULL, sealed BLOB NOT NULL)")
        c.execute("CREATE INDEX IF NOT EXISTS credentials_user ON credentials(user_id)")
        c.execute("CREATE TABLE IF NOT EXISTS access_modes (user_id TEXT PRIMARY KEY "
                  "REFERENCES users(user_id) ON DELETE CASCADE, nonce BLOB NOT NULL, "
                  "sealed BLOB NOT NULL)")

    # ------------------------------------------------------------------ sealing
    def _lookup(self, kind: str, facility: int, number: int) -> bytes:
        msg = f"palmgate/credential-lookup|{kind}|{int(facility)}|{int(number)}".encode()
        return hmac.new(self.st._k_tag, msg, hashlib.sha256).digest()

    @staticmethod
    def _ad_card(lookup: bytes, user_id: str) -> bytes:
        return b"palmgate/credential|" + lookup + b"|" + user_id.encode()

    @staticmethod
    def _ad_mode(user_id: str) -> bytes:
        return f"palmgate/access-mode|{user_id}".encode()

    def _need_user(self, user_id: str):
        u = self.st.get_user(user_id)
        if u is None:
            raise StoreError(f"no user {user_id!r} (enrol them first: palmgate enroll "
                             f"{user_id} ...)")
        return u

    # ------------------------------------------------------------------ cards
    def add_card(self, user_id: str, number: int, facility: int = 0,
                 fmt: str = "wiegand26") -> dict:
        """Give ``user_id`` a card. A card another user holds is refused."""
        from device.relays.wiegand_codec import check_card
        check_card(fmt, facility, number)
        self._need_user(user_id)
        lk = self._lookup("card", facility, number)
        owner = self.find_card(facility, number)
        if owner is not None and owner != user_id:
            raise StoreError(f"card {facility}:{number} already belongs to {owner!r} (remove "
                             f"it there first: palmgate users remove-credential {owner} "
                             f"--card {number} --facility {facility})")
        rec = {"user_id": user_id, "kind": "card", "format": fmt, "facility": int(facility),
               "number": int(number)}
        nonce, sealed = self.st._seal(json.dumps(rec, sort_keys=True).encode(),
                                      self._ad_card(lk, user_id))
        with self.st.transaction():
            self.st.conn.execute("INSERT INTO credentials(lookup, user_id, nonce, sealed) "
                                 "VALUES(?,?,?,?) ON CONFLICT(lookup) DO UPDATE SET "
                                 "user_id=excluded.user_id, nonce=excluded.nonce, "
                                 "sealed=excluded.sealed", (lk, user_id, nonce, sealed))
        return rec

    def remove_card(self, user_id: str, number: int, facility: int = 0) -> bool:
        lk = self._lookup("card", facility, number)
        with self.st.transaction():
            n = self.st.conn.execute("DELETE FROM credentials WHERE lookup=? AND user_id=?",
                                     (lk, user_id)).rowcount
        return n > 0

    def _open_card(self, lk, uid, nonce, sealed) -> dict:
        rec = json.loads(self.st._open(bytes(nonce), bytes(sealed),
                                       self._ad_card(bytes(lk), uid), f"credential of {uid!r}"))
        if rec.get("user_id") != uid:
            from device.store.store import TamperedError
            raise TamperedError(f"credential row of {uid!r} holds another user's card")
        return rec

    def cards(self, user_id: str | None = None) -> list[dict]:
        q, args = "SELECT lookup, user_id, nonce, sealed FROM credentials", ()
        if user_id is not None:
            q, args = q + " WHERE user_id=?", (user_id,)
        rows = self.st.conn.execute(q, args).fetchall()
        out = [self._open_card(*r) for r in rows]
        return sorted(out, key=lambda r: (r["user_id"], r["facility"], r["number"]))

    def find_card(self, facility: int, number: int) -> str | None:
        """The user holding card ``facility:number`` (authenticated), or None."""
        lk = self._lookup("card", facility, number)
        r = self.st.conn.execute("SELECT lookup, user_id, nonce, sealed FROM credentials "
                                 "WHERE lookup=?", (lk,)).fetchone()
        if r is None:
            return None
        rec = self._open_card(*r)
        if (rec["facility"], rec["number"]) != (int(facility), int(number)):
            from device.store.store import TamperedError
            raise TamperedError("credential row does not hold the card it is filed under")
        return rec["user_id"]

    # ------------------------------------------------------------------ access modes
    def set_mode(self, user_id: str, mode: str) -> str:
        if mode not in MODES:
            raise StoreError(f"access mode {mode!r}: use --mode palm, --mode card+palm or "
                             f"--mode pin+palm")
        self._need_user(user_id)
        nonce, sealed = self.st._seal(json.dumps({"user_id": user_id, "mode": mode}).encode(),
                                      self._ad_mode(user_id))
        with self.st.transaction():
            self.st.conn.execute("INSERT INTO access_modes(user_id, nonce, sealed) "
                                 "VALUES(?,?,?) ON CONFLICT(user_id) DO UPDATE SET "
                                 "nonce=excluded.nonce, sealed=excluded.sealed",
                                 (user_id, nonce, sealed))
        return mode

    def mode(self, user_id: str) -> str:
        r = self.st.conn.execute("SELECT nonce, sealed FROM access_modes WHERE user_id=?",
                                 (user_id,)).fetchone()
        if r is None:
            return "palm"
        d = json.loads(self.st._open(bytes(r[0]), bytes(r[1]), self._ad_mode(user_id),
                                     f"access mode of {user_id!r}"))
        if d.get("user_id") != user_id or d.get("mode") not in MODES:
            from device.store.store import TamperedError
            raise TamperedError(f"access mode row of {user_id!r} is not its own")
        return d["mode"]

    def modes(self) -> dict[str, str]:
        ids = [r[0] for r in self.st.conn.execute("SELECT user_id FROM access_modes")]
        return {u: self.mode(u) for u in ids}

    # ------------------------------------------------------------------ backup
    def export(self) -> dict:
        from device.store.pins import Pins
        return {"cards": self.cards(), "modes": self.modes(), "pins": Pins(self.st).export()}

    def load(self, data: dict) -> dict:
        """Add the cards, modes and PIN hashes of :meth:`export` (after the users are
        restored)."""
        for c in data.get("cards", []):
            self.add_card(c["user_id"], c["number"], c["facility"], c["format"])
        for u, m in data.get("modes", {}).items():
            self.set_mode(u, m)
        from device.store.pins import Pins
        pins = Pins(self.st).load(data.get("pins", []))
        return {"cards": len(data.get("cards", [])), "modes": len(data.get("modes", {})),
                "pins": pins}
