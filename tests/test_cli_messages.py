"""Error messages name the command-line option or the configuration key, never a Python
argument (issue 22: ``use replace=True``, ``create it with create=True``): every message
raised under device/ and calibration/ is scanned for ``name=True``-style Python keywords."""
import ast
import re
from pathlib import Path

from device.commands.common import cli_words

ROOT = Path(__file__).resolve().parent.parent
PY_ARG = re.compile(r"\b[a-z][a-z0-9_]*=(?:True|False|None)\b|\b[a-z][a-z0-9_]*=(?=\s|$|[,)])")
# "size=WxH" is a camera spec's own syntax; init's --set takes section.key=value
ALLOWED = {("device/sources/picamera2.py", "size="),
           ("device/commands/init.py", "key=v"), ("device/commands/init.py", "kind=l")}


def _raised_texts(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and node.exc is not None:
            yield node.lineno, "".join(s.value for s in ast.walk(node.exc)
                                       if isinstance(s, ast.Constant)
                                       and isinstance(s.value, str))


def test_no_python_argument_in_raised_messages():
    bad = []
    for folder in ("device", "calibration"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            rel = str(p.relative_to(ROOT))
            for line, text in _raised_texts(p):
                for m in PY_ARG.finditer(cli_words(text)):
                    if (rel, m.group(0)) not in ALLOWED:
                        bad.append(f"{rel}:{line}: {m.group(0)} in {text[:90]!r}")
    assert not bad, "\n".join(bad)


def test_cli_words_still_maps_the_old_library_spellings():
    assert cli_words("user 'a' is already enrolled (use replace=True to re-enrol)") == \
        "user 'a' is already enrolled (use --replace to re-enrol)"
    assert "create=True" not in cli_words("device key not found (create it with create=True)")
