"""The X-ray bone patch, measured as a spike (docs/results.md "An X-ray identity feature from
the bones' image"): the feature now lives in the gate, :mod:`device.gate.xray_bone_patch`;
re-exported here for the evaluation tools (device/eval/sensor_identity_eval.py).
"""
from device.gate.xray_bone_patch import (BONE_PATCH_MM, BONE_SIGMA_MM, EDGE_MM,  # noqa: F401
                                         OFFSET_MM, SHIFT_MM, bone_patch, probe_bone_patch)
