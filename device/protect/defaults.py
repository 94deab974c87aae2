"""The shipped protection defaults, chosen from the sweep of ``palmgate evaluate-protection
--sweep`` on held-out real palms (see README, "Protected templates")."""
from device.protect.core import ProtectConfig

DEFAULT_CONFIG = ProtectConfig(t=0.9, rotation="fraction", n_drop=4, drop_mode="random",
                               fill="zero", key_mode="per_cell")
