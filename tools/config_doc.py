"""``python -m tools.config_doc``: write docs/configuration.md from the configuration schema
(device.config.SCHEMA), so the reference cannot drift from the code."""
from __future__ import annotations

from device.config import render_reference
from tools.paths import PROJECT_ROOT


def main() -> int:
    path = PROJECT_ROOT / "docs" / "configuration.md"
    path.write_text(render_reference() + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
