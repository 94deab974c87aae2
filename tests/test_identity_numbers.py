"""The signed identity numbers (models/binding_<sensor>.json ``sensor_identity``) as the product
enrols and compares: NIR's re-chosen by their own rules with three enrolment presentations
(branch rnir, docs/results.md "NIR identity numbers with three enrolment presentations");
X-ray's for the bone patch's comparison with its turn refined (branch xid, docs/results.md
"The X-ray bone patch's person tail"); the values before kept beside them."""
from device.gate import sensor_identity as S
from device.gate.binding_numbers import load_binding_numbers


def test_the_signed_nir_identity_numbers_are_the_three_presentation_choice():
    doc = load_binding_numbers("nir").doc
    n = S.identity_numbers(doc)
    assert n["min_agreement"] == 0.2899 and n["min_lines_sum"] == 0.75
    assert n["min_lines_sum_unsure"] == 0.87            # its re-choice did not ship
    s = doc["sensor_identity"]
    assert "--enrol-presentations 3" in s["command"]
    assert "--enrol-presentations 3" in s["min_lines_sum_command"]
    assert s["previous_min_agreement"]["value"] == 0.2942
    assert s["previous_min_lines_sum"]["value"] == 0.74


def test_the_signed_xray_bone_patch_threshold_is_the_refined_comparisons():
    from device.gate.xray_bone_patch import REFINE_DEG
    doc = load_binding_numbers("xray").doc
    n = S.identity_numbers(doc)
    assert n["min_agreement"] == 0.8904 and REFINE_DEG == (-1.0, 1.0)
    s = doc["sensor_identity"]
    assert "--enrol-presentations 3" in s["command"] and "REFINE_DEG" in s["data"]
    assert s["previous_min_agreement"]["value"] == 0.8777
    assert s["previous_min_agreement"]["before"]["value"] == 0.8602
