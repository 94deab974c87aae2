"""Protected templates (seed 002): rotate-and-drop protection and protected matching.

core      keygen, slerp (fraction / equal-angle), drop masks (mode A: a preset count per
          sub-feature; importance-driven, claim 6), fill, enrol/enrol_many, protect_query,
          match_score, key_strip, ProtectedTemplate
gallery   ProtectedGallery: exact closed-form shift search, coarse-to-fine 1:N, 1:1
evaluate  palmgate evaluate-protection (EER, D_sys, inversion, sweep)
bench     palmgate bench-match (1:N timing)
defaults  DEFAULT_CONFIG, the shipped configuration
"""
from device.protect.core import (ProtectConfig, ProtectedTemplate, enrol, enrol_many,  # noqa
                                 key_strip, keygen, match_score, protect_query, slerp)
from device.protect.defaults import DEFAULT_CONFIG  # noqa: F401
from device.protect.gallery import Match, ProtectedGallery  # noqa: F401
