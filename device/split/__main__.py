"""``python -m device.split provision|bench|eval|leakage``: the same as ``palmgate split``."""
from device.commands.split import main

if __name__ == "__main__":
    raise SystemExit(main())
