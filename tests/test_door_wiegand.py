"""Wiegand frames: the pure codec (H10301 26-bit, H10306 34-bit, parity) and the GPIO output
decoded back by a receiver on gpiozero's mock pins."""
import pytest

from device.relays.wiegand_codec import (WiegandError, decode, encode, from_bytes, get_format,
                                         to_bytes)


def _int(bits):
    return int("".join(map(str, bits)), 2)


def test_h10301_known_frame_and_round_trip():
    bits = encode("wiegand26", 1, 1)
    assert len(bits) == 26 and _int(bits) == 0x2020002     # P 00000001 0x0001 P
    for fc, n in ((0, 0), (255, 65535), (17, 4242), (128, 1)):
        c = decode(encode("wiegand26", fc, n))
        assert (c.format, c.facility, c.number) == ("wiegand26", fc, n)
    for fc, n in ((0, 0), (65535, 65535), (300, 12)):
        c = decode(encode("wiegand34", fc, n))
        assert (c.format, c.facility, c.number) == ("wiegand34", fc, n)
        assert len(encode("wiegand34", fc, n)) == 34


def test_parity_errors_are_caught():
    for fmt in ("wiegand26", "wiegand34"):
        good = encode(fmt, 5, 1234)
        for i in range(len(good)):
            bad = list(good)
            bad[i] ^= 1                              # any single flipped bit
            with pytest.raises(WiegandError, match="parity"):
                decode(bad)
    with pytest.raises(WiegandError, match="27-bit"):
        decode([0] * 27)


def test_values_that_do_not_fit_are_refused():
    with pytest.raises(WiegandError, match="facility code 256"):
        encode("wiegand26", 256, 1)
    with pytest.raises(WiegandError, match="card number 65536"):
        encode("wiegand34", 1, 65536)
    with pytest.raises(WiegandError, match="unknown card format"):
        get_format("wiegand99")


def test_bytes_packing_is_osdp_raw_wiegand():
    bits = encode("wiegand26", 17, 4242)
    data = to_bytes(bits)
    assert len(data) == 4 and from_bytes(data, 26) == bits
    assert to_bytes([1, 0, 0, 0, 0, 0, 0, 0, 1]) == b"\x80\x80"


def test_gpio_output_decodes_back_on_mock_pins():
    pytest.importorskip("gpiozero")
    from gpiozero.pins.mock import MockFactory
    from device.eval.panel import WiegandPanel
    from device.relays.wiegand import WiegandOutput
    f = MockFactory()
    # a patient panel (200 ms frame timeout): the test machine is shared and loaded
    panel = WiegandPanel(f, 5, 6, frame_timeout_ms=200)
    out = WiegandOutput(5, 6, pin_factory=f, pulse_us=50, interval_us=2000,
                        frame_timeout_ms=200)
    try:
        sent = [(17, 4242), (0, 1), (255, 65535)]
        for fc, n in sent:
            out.send("wiegand26", fc, n)
        out.send("wiegand34", 300, 12)
        cards = panel.wait_cards(4)
        assert [(c.format, c.facility, c.number) for c in cards] == \
            [("wiegand26", fc, n) for fc, n in sent] + [("wiegand34", 300, 12)]
        assert panel.summary() == {"credentials_reported": 4, "secure_channel": False,
                                   "errors": 0}
        # the line idles high and each pulse pulls it low for about pulse_us
        pin = f.pin(5)
        states = pin.states
        assert states[1].state is True and states[-1].state is True    # idles high
        widths = [states[i].timestamp for i in range(2, len(states))
                  if states[i].state is True and states[i - 1].state is False]
        zeros = sum(b == 0 for fc, n in sent for b in encode("wiegand26", fc, n)) + \
            sum(b == 0 for b in encode("wiegand34", 300, 12))
        assert len(widths) == zeros                  # one low pulse on DATA0 per 0 bit
        assert min(widths) >= 45e-6 and sorted(widths)[len(widths) // 2] < 1e-3
    finally:
        out.close()
        panel.close()


def test_bad_timing_is_refused():
    pytest.importorskip("gpiozero")
    from gpiozero.pins.mock import MockFactory
    from device.relays.wiegand import WiegandOutput
    with pytest.raises(WiegandError, match="pulse width"):
        WiegandOutput(5, 6, pin_factory=MockFactory(), pulse_us=500)
    with pytest.raises(WiegandError, match="interval"):
        WiegandOutput(5, 6, pin_factory=MockFactory(), interval_us=50000)


def test_frame_held_up_mid_way_is_sent_again_whole():
    """A sender held up longer than the panel's frame timeout split the frame there: the panel
    drops the pieces (length/parity) and the gate sends the frame again, once."""
    pytest.importorskip("gpiozero")
    import time
    from gpiozero.pins.mock import MockFactory
    from device.eval.panel import WiegandPanel
    from device.relays.wiegand import WiegandOutput
    f = MockFactory()
    panel = WiegandPanel(f, 5, 6, frame_timeout_ms=60)
    out = WiegandOutput(5, 6, pin_factory=f, frame_timeout_ms=60)
    edges = {"n": 0}
    rx_bit = panel.rx.d1.when_activated

    def stall():                # the line's far end holds the sender up at the 4th one-bit
        edges["n"] += 1
        if edges["n"] == 4:
            time.sleep(0.15)
        rx_bit()
    panel.rx.d1.when_activated = stall
    try:
        assert out.send_bits(encode("wiegand26", 17, 4242)) == 2      # two tries
        cards = panel.wait_cards(3, timeout=3)
        assert [(c.facility, c.number) for c in cards] == [(17, 4242)]
        assert len(panel.rx.errors) == 2 and out.resends == 1          # the two pieces
    finally:
        out.close()
        panel.close()
