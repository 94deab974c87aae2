"""The signed identity numbers (models/binding_<sensor>.json ``sensor_identity``) as the product
enrols and compares: NIR's re-chosen by their own rules with three enrolment presentations
(branch rnir, docs/results.md "NIR identity numbers with three enrolment presentations");
X-ray's for the bone patch's comparison with its turn refined (branch xid, docs/results.md
"The X-ray bone patch's person tail"); the values before kept beside them."""
import pytest

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


def test_the_xray_turn_refinement_is_a_signed_number_a_file_without_it_reads_as_before():
    """The bone patch's turn refinement is signed (``sensor_identity.refine_deg``); an older
    file without it reads None, which the stage takes as the code's REFINE_DEG (as before)."""
    from device.gate.xray_bone_patch import REFINE_DEG
    doc = load_binding_numbers("xray").doc
    assert doc["sensor_identity"]["refine_deg"] == [-1.0, 1.0]
    assert S.identity_numbers(doc)["refine_deg"] == (-1.0, 1.0) == REFINE_DEG
    old = dict(doc, sensor_identity={k: v for k, v in doc["sensor_identity"].items()
                                     if k != "refine_deg"})
    assert S.identity_numbers(old)["refine_deg"] is None
    none = dict(doc, sensor_identity=dict(doc["sensor_identity"], refine_deg=[]))
    assert S.identity_numbers(none)["refine_deg"] == ()           # signed: no refinement
    assert S.identity_numbers(load_binding_numbers("nir").doc)["refine_deg"] is None


@pytest.mark.parametrize("bad", ["-1,1", 1.0, [1.0, "x"], [float("nan")], [True],
                                 [20.0], {"lo": -1}, [0.5] * 9])
def test_a_malformed_refine_deg_is_a_config_error(bad):
    from device.gate.binding_numbers import parse_numbers
    from device.models.model import ModelError
    doc = load_binding_numbers("xray").doc
    doc = dict(doc, sensor_identity=dict(doc["sensor_identity"], refine_deg=bad))
    with pytest.raises(ValueError, match="refine_deg"):
        S.identity_numbers(doc)
    with pytest.raises(ModelError, match="refine_deg"):
        parse_numbers(doc, "xray", "binding_xray.json")


def test_refine_deg_is_the_xray_bone_patchs_a_nir_file_naming_it_is_refused():
    from device.gate.binding_numbers import parse_numbers
    from device.models.model import ModelError
    doc = load_binding_numbers("nir").doc
    doc = dict(doc, sensor_identity=dict(doc["sensor_identity"], refine_deg=[-1.0, 1.0]))
    with pytest.raises(ModelError, match="refine_deg"):
        parse_numbers(doc, "nir", "binding_nir.json")
