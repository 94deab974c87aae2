"""The configuration sections of the door side: who drives the door ([decision]), the card
format the gate reports and reads ([card]), the OSDP peripheral ([osdp]) and the Wiegand lines
([wiegand]). Plain data here (``device.config`` turns each entry into an ``Opt`` and adds the
sections to its schema), and :func:`door_problem`, the checks across keys."""
from __future__ import annotations

from device.config_types import pin_id as _pin_id

PIN = {"default": "", "nullable": True, "pin": True}

DOOR_SECTIONS: dict[str, tuple[str, dict[str, dict]]] = {
    "decision": ("Who opens the door after a match.", {
        "mode": {"default": "local", "choices": ("local", "panel"),
                 "doc": "local: the gate pulses its own [relay] on an open (and reports the "
                        "user's card to a panel configured in [osdp] or [wiegand]); panel: "
                        "the gate only reports the user's card to the access panel, which "
                        "decides and drives the door -- the gate's relay then moves only on "
                        "the panel's OSDP output command."},
        "card_window_s": {"default": 10.0, "type": float, "min": 1.0, "max": 120.0,
                          "doc": "A card read on the Wiegand input ([wiegand] input pins) "
                                 "claims the presentation that follows within this many "
                                 "seconds: the palm is then verified 1:1 against the card's "
                                 "owner."},
    }),
    "card": ("The card number format: what the gate reports to the panel for a user (the "
             "card added with palmgate users add-credential) and what it reads on a Wiegand "
             "input.", {
        "format": {"default": "wiegand26", "choices": ("wiegand26", "wiegand34"),
                   "doc": "wiegand26: HID H10301, 8-bit facility code and 16-bit card number; "
                          "wiegand34: HID H10306, 16-bit facility code and 16-bit card "
                          "number. OSDP carries the same bits (raw Wiegand card read)."},
        "facility_code": {"default": 0, "type": int, "min": 0, "max": 65535,
                          "doc": "Facility (site) code of cards added without --facility "
                                 "(0-255 for wiegand26)."},
    }),
    "osdp": ("The gate as an OSDP peripheral (reader) of the access panel on an RS-485 line, "
             "through libosdp (the door extra: pip install 'palmgate[door]'), with the Secure "
             "Channel.", {
        "enabled": {"default": False, "type": bool,
                    "doc": "Run the OSDP peripheral (false: libosdp is never imported)."},
        "port": {"default": "", "nullable": True,
                 "doc": "Serial port of the RS-485 adapter (/dev/ttyUSB0, /dev/ttyAMA0) or a "
                        "pyserial URL; required when enabled."},
        "baudrate": {"default": 9600, "type": int, "min": 9600, "max": 230400,
                     "doc": "Line speed; the panel's setting (9600 is OSDP's default)."},
        "address": {"default": 0, "type": int, "min": 0, "max": 126,
                    "doc": "The gate's OSDP address on the line (the panel's reader "
                           "address)."},
        "key_file": {"default": "palmgate/osdp_scbk",
                     "doc": "Secure Channel Base Key (SCBK) installed by the panel: 32 hex "
                            "digits, mode 0600. Missing: the gate needs install_mode for its "
                            "first connection."},
        "install_mode": {"default": False, "type": bool,
                         "doc": "With no key_file, let the panel open the Secure Channel with "
                                "the default key SCBK-D and install its own key "
                                "(osdp_KEYSET), written to key_file. For the installation "
                                "only: set it back to false once the key is there."},
        "require_secure": {"default": True, "type": bool,
                           "doc": "Report a card only over an active Secure Channel (a card "
                                  "number never crosses the wire in the clear)."},
        "led_pin": {**PIN, "doc": "GPIO output of the reader LED the panel's LED commands "
                                  "light (any colour but off); empty: none fitted."},
        "buzzer_pin": {**PIN, "doc": "GPIO output of the buzzer the panel's buzzer commands "
                                     "sound; empty: none."},
        "tamper_pin": {**PIN, "doc": "GPIO input of the enclosure's tamper switch (active = "
                                     "tampered, pull-up): reported to the panel; empty: "
                                     "none."},
        "power_fail_pin": {**PIN, "doc": "GPIO input of the supply monitor (active = power "
                                         "failure, pull-up): reported to the panel; empty: "
                                         "power reported good."},
    }),
    "wiegand": ("Wiegand lines on GPIO (gpiozero; pin factory: gpio.pin_factory): the gate as "
                "a Wiegand reader to the panel (output), and a card reader wired to the gate "
                "(input) whose card turns the next presentation into a 1:1 verification.", {
        "enabled": {"default": False, "type": bool,
                    "doc": "Send the user's card on d0_pin/d1_pin on every open."},
        "d0_pin": {**PIN, "doc": "GPIO output to the panel's DATA0 (green wire)."},
        "d1_pin": {**PIN, "doc": "GPIO output to the panel's DATA1 (white wire)."},
        "active_low": {"default": True, "type": bool,
                       "doc": "true: the GPIO goes low for a pulse (a level shifter to the "
                              "5 V lines); false: high for a pulse (an open-collector "
                              "transistor stage, which inverts)."},
        "pulse_us": {"default": 50, "type": int, "min": 20, "max": 100,
                     "doc": "Pulse width in microseconds (the standard: 20-100, 50 "
                            "typical)."},
        "interval_us": {"default": 2000, "type": int, "min": 200, "max": 20000,
                        "doc": "Time from one bit to the next in microseconds (the standard: "
                               "200 us - 20 ms, 2 ms typical)."},
        "frame_timeout_ms": {"default": 20.0, "type": float, "min": 5.0, "max": 1000.0,
                             "doc": "Silence after which the panel ends a frame (the "
                                    "standard's longest bit interval, 20 ms). The gate spaces "
                                    "frames by 5 times this, and sends a frame again when it "
                                    "was held up longer than this mid-frame (the panel drops "
                                    "the broken pieces: length and parity); the card input "
                                    "ends a frame after this silence."},
        "input_d0_pin": {**PIN, "doc": "GPIO input from a card reader's DATA0 (pull-up); "
                                       "with input_d1_pin, a card read claims the next "
                                       "presentation (card + palm)."},
        "input_d1_pin": {**PIN, "doc": "GPIO input from a card reader's DATA1 (pull-up)."},
    }),
}

DOOR_PINS = (("osdp", "led_pin"), ("osdp", "buzzer_pin"), ("osdp", "tamper_pin"),
             ("osdp", "power_fail_pin"), ("wiegand", "d0_pin"), ("wiegand", "d1_pin"),
             ("wiegand", "input_d0_pin"), ("wiegand", "input_d1_pin"))


def door_problem(out: dict) -> str | None:
    """The first cross-key problem of the validated sections, as a message naming the key."""
    c, o, w = out["card"], out["osdp"], out["wiegand"]
    if c["format"] == "wiegand26" and c["facility_code"] > 255:
        return (f"card.facility_code: {c['facility_code']} does not fit wiegand26 (0-255); "
                f"use card.format = \"wiegand34\"")
    if o["enabled"] and not o["port"]:
        return "osdp.port: required when osdp.enabled is true"
    if w["enabled"] and (w["d0_pin"] is None or w["d1_pin"] is None):
        return "wiegand.d0_pin: wiegand.d0_pin and wiegand.d1_pin are required when " \
               "wiegand.enabled is true"
    if (w["input_d0_pin"] is None) != (w["input_d1_pin"] is None):
        return "wiegand.input_d0_pin: give both wiegand.input_d0_pin and wiegand.input_d1_pin"
    if w["interval_us"] < 2 * w["pulse_us"]:
        return "wiegand.interval_us: must be at least twice wiegand.pulse_us"
    if out["decision"]["mode"] == "panel" and not (o["enabled"] or w["enabled"]):
        return "decision.mode: \"panel\" needs a panel: osdp.enabled or wiegand.enabled"
    used: dict[str, str] = {}
    gp = out.get("gpio", {})
    if gp.get("enabled"):
        for k in ("illuminator_pin", "strobe_pin", "door_pin", "exit_pin"):
            if gp.get(k) is not None:
                used[_pin_id(gp[k])] = f"gpio.{k}"
    for s, k in DOOR_PINS:
        v = out[s][k]
        if v is None or (s == "osdp" and not o["enabled"]) or \
                (s == "wiegand" and k in ("d0_pin", "d1_pin") and not w["enabled"]):
            continue
        pid = _pin_id(v)
        if pid in used:
            return f"{s}.{k}: pin {v!r} is already {used[pid]}"
        used[pid] = f"{s}.{k}"
    return None
