"""Moved to device.gabor (the runtime needs it too); kept for older imports."""
from device.gabor import gabor_bank  # noqa: F401
