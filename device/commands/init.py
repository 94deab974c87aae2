"""`palmgate init --dir DIR`: a new unit's configuration, device key and empty sealed store."""
from __future__ import annotations

import json
import os
from pathlib import Path

from device.commands.common import err

try:
    import tomllib
except ModuleNotFoundError:     # pragma: no cover
    import tomli as tomllib     # type: ignore[no-redef]


def parse_set(item: str) -> tuple[str, str, object]:
    """``section.key=value`` -> (section, key, value); the value is read as TOML (a number,
    true/false, a "string", a [list]) and else taken as a plain string."""
    name, sep, raw = item.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ValueError(f"--set {item!r}: use --set section.key=value (e.g. --set "
                         f"relay.kind=lcus)")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def set_in_toml(text: str, section: str, key: str, value) -> str:
    """Replace ``key = ...`` of ``[section]`` in the rendered example (comments kept)."""
    from device.config import SCHEMA
    from device.config_text import toml_value
    if section not in SCHEMA or key not in SCHEMA[section][1]:
        raise ValueError(f"--set {section}.{key}: no such configuration key (see "
                         f"docs/configuration.md)")
    lines = text.split("\n")
    inside = False
    for i, line in enumerate(lines):
        if line.startswith("["):
            inside = line.strip() == f"[{section}]"
        elif inside and line.split("=", 1)[0].strip() == key and not line.startswith("#"):
            lines[i] = f"{key} = {toml_value(value)}"
            return "\n".join(lines)
    raise ValueError(f"--set {section}.{key}: not found in the example file")


def render_unit_config(folder: Path, sets=()) -> str:
    from device.config_text import render_example
    text = render_example()
    head = ["# Written by `palmgate init`: every key with its meaning; the [paths] point at",
            f"# this unit's files in {folder}. Change a key, then check the file with",
            "# `palmgate status --config THIS_FILE`.", ""]
    text = "\n".join(head) + text
    base = {("paths", "store"): str(folder / "templates.db"),
            ("paths", "device_key"): str(folder / "device.key"),
            ("paths", "create_key"): False,
            ("osdp", "key_file"): str(folder / "osdp_scbk")}
    for (s, k), v in base.items():
        text = set_in_toml(text, s, k, v)
    for item in sets:
        text = set_in_toml(text, *parse_set(item))
    return text


def cmd_init(a) -> int:
    from device.config import load_config
    from device.store.provision import provision
    folder = Path(a.dir).expanduser().absolute()
    cfg_file = folder / "palmgate.toml"
    if cfg_file.exists():
        raise ValueError(f"{cfg_file} already exists: refusing to overwrite it (move it away, "
                         f"or give another --dir)")
    text = render_unit_config(folder, a.set or [])
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    tmp = folder / ".palmgate.toml.tmp"
    tmp.write_text(text)
    try:
        cfg = load_config(tmp)                   # a bad --set stops here, nothing made
        made = provision(cfg.paths.store, cfg.paths.device_key)
    except BaseException:
        tmp.unlink()
        raise
    os.replace(tmp, cfg_file)
    rep = {"config": str(cfg_file), **made,
           "next": [f"palmgate status --config {cfg_file}",
                    f"palmgate enroll NAME --capture --config {cfg_file}",
                    f"palmgate run --config {cfg_file}"]}
    print(json.dumps(rep, indent=2))
    err(f"palmgate init: wrote {cfg_file}, the device key {made['device_key']} (keep a copy "
        f"offline) and an empty store {made['store']}")
    return 0


def register(sub) -> None:
    sp = sub.add_parser("init", help="a new unit: DIR/palmgate.toml (every key, documented), "
                                     "the device key and an empty sealed store; refuses to "
                                     "overwrite any of them")
    sp.add_argument("--dir", required=True, help="folder for the three files (e.g. "
                                                 "/etc/palmgate)")
    sp.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                    help="a key of the file other than its default, e.g. --set "
                         "relay.kind=lcus --set relay.port=/dev/palmgate-relay (repeatable)")
    sp.set_defaults(fn=cmd_init)
