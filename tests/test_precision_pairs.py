"""device.eval.precision_pairs: the pure summary of int8-vs-fp32 presentation pairs."""
from device.eval.precision_pairs import logit, summary


def _row(cls, o8, o32, att=None, shift=0.1):
    r = {"class": cls, "int8": {"outcome": o8, "binding": 1.0, "identity": 0.9},
         "fp32": {"outcome": o32, "binding": 1.5, "identity": 0.88},
         "logit_shift": shift, "logit_shift_liveness_only": shift / 2, "sr_rms": 0.001,
         "p_hand_int8": 0.99, "p_hand_fp32": 0.98, "landmark_px": 2.0}
    if att is not None:
        r["attribution"] = att
    return r


def test_summary_counts_differences_and_the_part_that_carries_them():
    same = {"int8_again": "deny:not_live", "fp32_again": "open"}
    rows = [_row("bona_fide", "open", "open"),
            _row("bona_fide", "deny:not_live", "open",
                 {**same, "fp32+int8_sensor": "deny:not_live", "fp32+int8_landmarks": "open",
                  "fp32+int8_segmenter": "open", "fp32+int8_features": "open",
                  "fp32+int8_all": "deny:not_live"}),
            _row("photo", "deny:not_live", "deny:sensor_mismatch",
                 {"int8_again": "deny:not_live", "fp32_again": "deny:sensor_mismatch",
                  "fp32+int8_sensor": "deny:sensor_mismatch",
                  "fp32+int8_landmarks": "deny:sensor_mismatch",
                  "fp32+int8_segmenter": "deny:sensor_mismatch",
                  "fp32+int8_features": "deny:sensor_mismatch",
                  "fp32+int8_all": "deny:sensor_mismatch"})]
    s = summary(rows)
    assert (s["n"], s["differ"], s["differ_bona_fide"]) == (3, 2, 1)
    assert s["pairs"] == {"bona_fide: fp32 open -> int8 deny:not_live": 1,
                          "photo: fp32 deny:sensor_mismatch -> int8 deny:not_live": 1}
    # the photo's int8 outcome comes back with no single int8 part, nor with all of them
    assert s["reproduced_by_int8_part"] == {"sensor": 1, "none": 1}
    assert s["not_repeatable"] == 0
    assert s["abs_binding_diff"]["q50"] == 0.5


def test_a_pair_that_changes_when_asked_again_is_counted_not_repeatable():
    rows = [_row("bona_fide", "open", "deny:no_match",
                 {"int8_again": "deny:no_match", "fp32_again": "deny:no_match"})]
    assert summary(rows)["not_repeatable"] == 1


def test_logit():
    assert logit(None) is None
    assert abs(logit(0.5)) < 1e-12
    assert logit(1.0) > 15 and logit(0.0) < -15


def test_an_attribution_that_raised_is_counted_as_such_not_as_unrepeatable_or_carried_by_none():
    rows = [_row("bona_fide", "open", "deny:sensor_mismatch",
                 {"error": "RuntimeError: boom"}),
            _row("photo", "deny:not_live", "deny:sensor_mismatch")]   # never attributed
    s = summary(rows)
    assert s["differ"] == 2
    assert s["attribution_failed"] == 2
    assert s["not_repeatable"] == 0
    assert s["reproduced_by_int8_part"] == {}
