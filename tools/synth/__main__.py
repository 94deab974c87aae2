"""``python -m tools.synth <command>`` is ``python -m device.synth <command>``."""
from device.synth.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
