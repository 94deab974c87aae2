"""Factory calibration tool (``palmgate-calibrate``)."""
