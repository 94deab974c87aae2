"""The ``[liveness]`` section of the gate's configuration: the sensor stage (presence, SR,
liveness), the binding of the sensor frame to the views, the sensor identity check, and the
second look's keys (:mod:`device.config_second_look`); :mod:`device.config` puts it in its
schema."""
from __future__ import annotations

from device.config_second_look import SECOND_LOOK_OPTS
from device.config_types import Opt

LIVENESS_SECTION: tuple[str, dict[str, Opt]] = (
    "Transmission-sensor branch (seed 001): SR x2, then p(live) > threshold.", {
    "enabled": Opt(True, "Run the liveness check. false only for tests of the matcher; "
                         "a gate without liveness accepts printed palms.", bool),
    "sensor": Opt("nir", "Sensor kind: xray or nir (selects sr_<sensor>, "
                         "liveness_<sensor> models).", choices=("xray", "nir")),
    "threshold": Opt("", "A stricter p(live) threshold than the signed manifest's "
                         "(empty: the signed one). A value below the signed threshold is "
                         "refused: the gate then denies every presentation "
                         "(liveness_unavailable) and `palmgate status` names it; a lower "
                         "threshold takes a newly signed manifest (docs/model-signing.md).",
                     float, min=0.0, max=1.0, nullable=True),
    "binding": Opt(True, "Check that the sensor frame shows the views' hand (the same hand "
                         "in both: the front end's hand landmarks of two or more views "
                         "triangulated through the factory registration and looked for in "
                         "the sensor frame; device/gate/sensor_binding.py): a mismatch, "
                         "or fewer than two views with landmarks, denies with "
                         "sensor_mismatch. false only for bring-up: without it a live hand "
                         "under the sensor and a replica before the cameras are judged "
                         "apart.", bool),
    "binding_max_distance": Opt("", "A stricter binding threshold than the signed one "
                                    "(largest binding score of a live presentation, mm: "
                                    "how far the sensor frame's hand lies, at probes tied "
                                    "to the views' landmarks, outside the range live hands "
                                    "give; empty: the sensor's signed threshold, chosen on "
                                    "validation scenes, models/binding_<sensor>.json; "
                                    "docs/sensor-branch.md, Binding). A value above the "
                                    "signed threshold is refused: the gate then denies "
                                    "every presentation (liveness_unavailable) and "
                                    "`palmgate status` names it.", float, min=0.0,
                                max=1000.0, nullable=True),
    "binding_min_palm_lines": Opt("", "NIR: a stricter least palm-line agreement than "
                                      "the signed one (how well the palm lines the views "
                                      "show, carried into the NIR frame, agree with the "
                                      "frame's; device/gate/binding_texture.py; empty: the "
                                      "signed models/binding_nir.json's palm_lines, and no "
                                      "palm-line check where it has none; docs/"
                                      "sensor-branch.md, Binding). Where the signed file "
                                      "has palm-line numbers the check is on; a value below "
                                      "the signed one is refused (liveness_unavailable for "
                                      "every presentation, named by `palmgate status`); "
                                      "where it has none, a value turns the check on. Set "
                                      "for X-ray, refused the same way.", float,
                                  min=-1.0, max=1.0, nullable=True),
    "sensor_identity": Opt("sensor_default", "After identification, the sensor frame's "
                           "identity feature against the identified person's own sensor "
                           "templates kept at enrolment (NIR: the palm lines, "
                           "device/gate/sensor_identity.py; X-ray: the mid-hand bones, "
                           "device/gate/xray_bone_patch.py; signed threshold in "
                           "models/binding_<sensor>.json): another person's hand under "
                           "the sensor denies with sensor_identity. when_enrolled: users "
                           "enrolled without sensor templates (before this check, or in "
                           "split mode) pass without it, and the audit record says "
                           "sensor_identity=not_enrolled; required: they are denied "
                           "(sensor_identity) until re-enrolled; off: not checked. "
                           "sensor_default: the sensor's own default "
                           "(device/gate/sensor_identity_stage.py SENSOR_DEFAULT: NIR "
                           "when_enrolled, X-ray when_enrolled; users enrolled before "
                           "pass unchecked until re-enrolled with X-ray templates). X-ray "
                           "was measured on synthetic radiographs only: real wrists "
                           "(deviation moves the carpals the feature leans on) may deny "
                           "more live hands; off turns it off.",
                           choices=("sensor_default", "when_enrolled", "required", "off")),
})
LIVENESS_SECTION[1].update(SECOND_LOOK_OPTS)     # second_look, second_look_max_band
