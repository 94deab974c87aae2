"""The configuration section of the board's GPIO devices ([gpio]: illuminator, strobe, door
contact, exit button); :mod:`device.config` puts it in its schema."""
from __future__ import annotations

from device.config_types import Opt

GPIO_SECTION: tuple[str, dict[str, Opt]] = (
    "GPIO devices on the board through gpiozero (device/relays/gpio.py): the IR/X-ray "
    "illuminator and LED strobe (on while a burst is captured), the door sensor "
    "(held-open and forced-open alarms) and the request-to-exit button (pulses the "
    "relay). All off by default, so the gate runs on a laptop. A pin is an integer "
    "(BCM numbering, 17 = GPIO17) or a gpiozero pin name (\"GPIO17\", \"BOARD11\"); "
    "empty: that device is not fitted. A configured pin without gpiozero or without "
    "a working pin factory stops the gate at start with a configuration error.", {
    "enabled": Opt(False, "Use the GPIO devices below. false: none is opened and gpiozero "
                          "is never imported (the pins below are ignored).", bool),
    "pin_factory": Opt("", "gpiozero pin factory: lgpio (Raspberry Pi 5), rpigpio, "
                           "pigpio, native, mock (tests); empty: gpiozero's default "
                           "($GPIOZERO_PIN_FACTORY, else the first that loads).",
                       choices=("lgpio", "rpigpio", "pigpio", "native", "mock"),
                       nullable=True),
    "illuminator_pin": Opt("", "Output that switches the IR/X-ray illuminator; on for "
                               "each burst capture, off after it.", nullable=True,
                           pin=True),
    "illuminator_active_high": Opt(True, "true: the illuminator is on when the pin is "
                                         "high; false: on when low.", bool),
    "illuminator_max_on_s": Opt(2.0, "Longest time the illuminator may stay on, whatever "
                                     "the capture does (the output's own timer switches "
                                     "it off).", float, min=0.05, max=30.0),
    "strobe_pin": Opt("", "Output of the LED strobe, on during each burst capture.",
                      nullable=True, pin=True),
    "strobe_active_high": Opt(True, "true: the strobe is on when the pin is high.", bool),
    "door_pin": Opt("", "Input of the door contact (reed switch); with it the gate "
                        "reports held-open and forced-open doors.", nullable=True,
                    pin=True),
    "door_closed_when_active": Opt(True, "true: the input reads active while the door is "
                                         "shut (a reed switch to ground with the pull-up); "
                                         "false: active while open.", bool),
    "door_pull_up": Opt(True, "Internal pull-up on the door input (false: pull-down).",
                        bool),
    "held_open_s": Opt(10.0, "An authorised door still open after this many seconds is "
                             "held open (alarm: log, audit record, status).", float,
                       min=0.5, max=3600.0),
    "grant_window_s": Opt(5.0, "A door that opens within this many seconds of a relay "
                               "pulse (palm or exit button) is authorised; any other "
                               "opening is forced open.", float, min=0.5, max=300.0),
    "exit_pin": Opt("", "Input of the request-to-exit button: a press pulses the relay "
                        "(egress, never blocked by the attempt limiter) and writes an "
                        "audit record.", nullable=True, pin=True),
    "exit_pull_up": Opt(True, "true: the button connects the pin to ground (internal "
                              "pull-up, pressed = low); false: to 3V3 (pull-down, "
                              "pressed = high).", bool),
    "bounce_s": Opt(0.05, "Debounce time of the door and exit inputs (0: none).", float,
                    min=0.0, max=1.0),
})
