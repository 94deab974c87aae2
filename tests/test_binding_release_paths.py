"""A held-back binding deny (device/gate/binding_release.py) on every path after the binding:
an error or a timeout of the feature, match or identity stage, 1:1 (a claimed user), and the
access-time checks after a release -- the held deny wins, never an open."""
import pytest

from tests.test_binding_release import _held, _Identity, pipes  # noqa: F401 - the fixture


class _Slow(_Identity):
    def __call__(self, frame, probes, out):
        import time
        time.sleep(0.01)
        return super().__call__(frame, probes, out)


def _boom(*a):
    raise RuntimeError("stage broke")


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("where", ["feature_error", "match_error", "match_timeout",
                                   "identity_error", "identity_timeout"])
def test_an_error_or_timeout_after_the_binding_denies_sensor_mismatch(pipes, synthetic_bursts,
                                                                       overlap, where):
    _, on, off = pipes
    p = on if overlap else off
    p.binding, p.identity = _held, _Identity("checked")
    if where == "feature_error":
        p.features = _boom
    elif where == "match_error":
        p._match = _boom
    elif where == "match_timeout":
        match = p._match

        def slow(*a):
            import time
            time.sleep(0.01)
            return match(*a)
        p._match = slow
    elif where == "identity_error":
        p.identity = _boom
    elif where == "identity_timeout":
        p.identity = _Slow()
    cfg = p.cfg
    if where.endswith("timeout"):
        p.cfg = cfg.replace(timeouts={where.split("_")[0]: 1})
    try:
        d = p.decide(synthetic_bursts["genuine"][0])
        held, p.binding = p.binding, None            # the same stage without a held deny
        alone = p.decide(synthetic_bursts["genuine"][0])
        p.binding = held
    finally:
        p.cfg = cfg
    stage = where.split("_")[0]
    assert alone.reason == ("timeout:" if "timeout" in where else "error:") + stage
    assert (d.decision, d.reason, d.user_id, d.score, d.binding_size_term) == \
        ("deny", "sensor_mismatch", None, None, None)
    assert d.sensor_identity is None and d.hand_size is None


@pytest.mark.parametrize("overlap", [True, False])
def test_one_to_one_releases_only_the_claimed_users_checks(pipes, synthetic_bursts, overlap):
    _, on, off = pipes
    p = on if overlap else off
    p.binding, p.identity = _held, _Identity("checked")
    g = synthetic_bursts["genuine"][0]
    d = p.decide(g, "person-000")
    assert (d.decision, d.binding_size_term, d.user_id) == ("open", "released", "person-000")
    d = p.decide(g, "person-001")                   # another's claim: no match, the held deny
    assert (d.decision, d.reason, d.user_id) == ("deny", "sensor_mismatch", None)
    d = p.decide(g, "nobody")
    assert (d.decision, d.reason, d.user_id) == ("deny", "sensor_mismatch", None)


def test_an_expired_user_released_is_still_denied(pipes, synthetic_bursts):
    _, on, _ = pipes
    on.binding, on.identity = _held, _Identity("checked")

    class Expired:
        def access(self, now, holidays):
            return "expired"
    users = dict(on.users)
    on.users = {**users, "person-000": Expired()}
    try:
        d = on.decide(synthetic_bursts["genuine"][0])
    finally:
        on.users = users
    assert (d.decision, d.reason) == ("deny", "expired")
