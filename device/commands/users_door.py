"""The `palmgate users` actions of the door side: cards, access mode, label.

    palmgate users add-credential USER --card N [--facility F]   a card (card.format)
    palmgate users remove-credential USER --card N [--facility F]
    palmgate users mode USER --mode palm|card+palm|pin+palm    palm only, or a card / PIN first
    palmgate users label USER --label TEXT
    palmgate users set-pin USER [--keypad-id N]   the PIN from the terminal (typed twice)
                                                   or stdin; N: typed before it
    palmgate users remove-pin USER

Each writes an audit record naming the operator (``--operator``, default the login user) in
the same store transaction as the change; card numbers and PINs stay out of the audit log.
"""
from __future__ import annotations

import json

from device.commands.common import operator

DOOR_ACTIONS = ("add-credential", "remove-credential", "mode", "label", "set-pin",
                "remove-pin")


def add_door_options(sp) -> None:
    sp.add_argument("--card", type=int, default=None, metavar="N",
                    help="add-credential / remove-credential: the card number")
    sp.add_argument("--facility", type=int, default=None, metavar="F",
                    help="the card's facility code (default: card.facility_code)")
    sp.add_argument("--mode", choices=["palm", "card+palm", "pin+palm"], default=None,
                    help="mode: palm = the palm alone opens; card+palm = a card read first, "
                         "then the palm verified against the card's owner; pin+palm = the "
                         "user's PIN on the keypad first (users set-pin), then the palm")
    sp.add_argument("--keypad-id", type=int, default=None, metavar="N",
                    help="set-pin: the number the user types on the keypad before their PIN "
                         "(ID # PIN #); required the first time, kept when left out")
    sp.add_argument("--label", dest="new_label", default=None, metavar="TEXT",
                    help="label: the user's label (a name, a department)")


def door_action(a, cfg, st) -> dict:
    """One door action on a user: the change and its audit record in one store transaction."""
    pin = None
    if a.action == "set-pin":               # read before the transaction holds the store
        from device.commands.pin import read_pin
        pin = read_pin()
    with st.transaction():
        return _door_action(a, cfg, st, pin)


def _door_action(a, cfg, st, pin=None) -> dict:
    from device.store.credentials import Credentials
    who = operator(a)
    term = cfg.gate.terminal
    if a.action in ("set-pin", "remove-pin"):
        from device.store.pins import Pins
        pins = Pins(st)
        if a.action == "set-pin":
            kid = pins.set_pin(a.user_id, pin, a.keypad_id)
            st.audit.append("pin_set", user_id=a.user_id, terminal=term, operator=who)
            return {"user_id": a.user_id, "pin": "set", "keypad_id": kid,
                    "access_mode": Credentials(st).mode(a.user_id)}
        if Credentials(st).mode(a.user_id) == "pin+palm":
            raise ValueError(f"{a.user_id!r} must type a PIN (mode pin+palm): set "
                             f"--mode palm or --mode card+palm first (palmgate users mode "
                             f"{a.user_id} --mode palm)")
        if not pins.remove_pin(a.user_id):
            raise ValueError(f"{a.user_id!r} has no PIN")
        st.audit.append("pin_remove", user_id=a.user_id, terminal=term, operator=who)
        return {"user_id": a.user_id, "pin": "removed"}
    if a.action in ("add-credential", "remove-credential"):
        if a.card is None:
            raise ValueError(f"users {a.action} needs --card N")
        fc = cfg.card.facility_code if a.facility is None else a.facility
        cr = Credentials(st)
        if a.action == "add-credential":
            rec = cr.add_card(a.user_id, a.card, fc, cfg.card.format)
            st.audit.append("credential_add", user_id=a.user_id, terminal=term,
                            operator=who, reason=f"card ({cfg.card.format})")
            return {"user_id": a.user_id, "card": rec["number"], "facility": rec["facility"],
                    "format": rec["format"], "cards": len(cr.cards(a.user_id))}
        if not cr.remove_card(a.user_id, a.card, fc):
            raise ValueError(f"{a.user_id!r} holds no card {fc}:{a.card}")
        st.audit.append("credential_remove", user_id=a.user_id, terminal=term, operator=who)
        return {"user_id": a.user_id, "removed": True, "cards": len(cr.cards(a.user_id))}
    if a.action == "mode":
        if a.mode is None:
            raise ValueError("users mode needs --mode palm, --mode card+palm or --mode "
                             "pin+palm")
        if a.mode == "pin+palm":
            from device.store.pins import Pins
            if not Pins(st).has_pin(a.user_id):
                raise ValueError(f"{a.user_id!r} has no PIN: give one first (palmgate users "
                                 f"set-pin {a.user_id})")
        m = Credentials(st).set_mode(a.user_id, a.mode)
        st.audit.append("user_mode", user_id=a.user_id, terminal=term, operator=who,
                        mode=m)
        return {"user_id": a.user_id, "access_mode": m}
    if a.action == "label":
        if a.new_label is None:
            raise ValueError("users label needs --label TEXT")
        u = st.update_user(a.user_id, label=a.new_label)
        st.audit.append("user_label", user_id=a.user_id, terminal=term, operator=who)
        return {"user_id": a.user_id, "label": u.label}
    raise ValueError(f"unknown users action {a.action!r}")


def door_details(st, user_id: str) -> dict:
    """``users show``: the user's access mode, whether they have a PIN, and their cards."""
    from device.store.credentials import Credentials
    from device.store.pins import Pins
    cr = Credentials(st)
    kid = Pins(st).keypad_id(user_id)
    return {"access_mode": cr.mode(user_id), "pin": kid is not None, "keypad_id": kid,
            "cards": [{"facility": c["facility"], "card": c["number"], "format": c["format"]}
                      for c in cr.cards(user_id)]}


def print_json(d: dict) -> None:
    print(json.dumps(d))
