"""``python -m tools.synth``: the command line of the synthetic data engine, whose code lives in
:mod:`device.synth` (the demo ships it in the wheel)."""
