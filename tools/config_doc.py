"""``python -m tools.config_doc``: write docs/configuration.md and device/palmgate.example.toml
from the configuration schema (device.config.SCHEMA), so neither can drift from the code (a test
checks both)."""
from __future__ import annotations

from device.config_text import render_example, render_reference
from tools.paths import PROJECT_ROOT


def main() -> int:
    for path, text in ((PROJECT_ROOT / "docs" / "configuration.md", render_reference()),
                       (PROJECT_ROOT / "device" / "palmgate.example.toml", render_example())):
        path.write_text(text + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
