"""The command functions of ``palmgate-calibrate``, one module per step; :mod:`calibration.cli`
parses the arguments and calls them. ``common`` holds what the steps share."""
