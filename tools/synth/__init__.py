"""``python -m tools.synth``: kept for the commands in the docs and training recipes; the synthetic
data engine itself lives in :mod:`device.synth` (the demo ships it in the wheel)."""
