"""``python -m tests.trusting_cli PUBLIC_KEY ARGS...``: palmgate's command line (device.cli)
in a process that also trusts the tests' throwaway signing key (base64 raw Ed25519 public key),
for tests that run ``palmgate run`` on a models folder they signed. Tests only: the gate's own
entry point has no such argument (device/models/trust.py)."""
import sys

from device.cli import main
from device.models.signing import public_key_from_text
from device.models.trust import trust_in_this_process

if __name__ == "__main__":
    trust_in_this_process(public_key_from_text(sys.argv[1]))
    raise SystemExit(main(sys.argv[2:]))
