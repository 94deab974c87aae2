import numpy as np

from device.split.ring import Prg, decode, encode, reconstruct, share


def test_encode_decode_roundtrip_signed():
    x = np.array([-3.5, -1e-5, 0.0, 2.25, 1e6])
    assert np.allclose(decode(encode(x, 16), 16), x, atol=2 ** -17)


def test_shares_reconstruct_exactly_and_are_fresh():
    prg = Prg(b"s" * 32)
    x = prg.ring((10_000,))
    s0, s1 = share(x, prg)
    assert np.array_equal(reconstruct(s0, s1), x)
    t0, _ = share(x, prg)
    assert not np.array_equal(s0, t0)
    assert s0.shape == x.shape and s1.shape == x.shape


def test_ring_wraps_modulo_2_64():
    a = np.array([2 ** 64 - 1], np.uint64)
    assert (a + np.uint64(2))[0] == 1
    assert decode(encode(np.array([-2.0]), 8) * encode(np.array([3.0]), 8), 16)[0] == -6.0


def test_prg_is_deterministic_and_bits_balanced():
    assert np.array_equal(Prg(b"k" * 32).ring((4,)), Prg(b"k" * 32).ring((4,)))
    assert abs(Prg(b"q" * 32).bits((20_000,)).mean() - 0.5) < 0.02
