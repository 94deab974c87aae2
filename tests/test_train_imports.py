"""The training modules under tools/train import each other without a circle (the shared
pieces sit in modules of their own: recognition_data.py, sensor_config.py ...), counting the
imports inside functions too, and none of them grows past 600 lines."""
import ast
from pathlib import Path

TRAIN = Path(__file__).resolve().parent.parent / "tools" / "train"


def _imports(path: Path) -> set[str]:
    """The tools.train modules ``path`` imports, anywhere in the file."""
    out = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom) and n.module == "tools.train":
            out |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom) and (n.module or "").startswith("tools.train."):
            out.add(n.module.split(".")[2])
        elif isinstance(n, ast.Import):
            out |= {a.name.split(".")[2] for a in n.names if a.name.startswith("tools.train.")}
    return out - {path.stem}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}                 # 1: on the current path, 2: done

    def visit(m, path):
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return path + [m, d]
            if d in graph and d not in state:
                found = visit(d, path + [m])
                if found:
                    return found
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m, [])
            if found:
                return found
    return None


def test_no_import_circle_among_training_modules():
    graph = {p.stem: _imports(p) for p in TRAIN.glob("*.py")}
    assert _cycle(graph) is None, f"import circle: {' -> '.join(_cycle(graph))}"
    assert "recognition" not in graph["recognition_export"] | graph["recognition_fusion"]
    assert "recognition_data" in graph["recognition_export"]
    # the fusion module is the model alone: its one training loop is recognition_fusion_train
    assert not graph["recognition_fusion"] & {"recognition_data", "recognition_cells",
                                              "recognition_fusion_train"}


def test_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_training_modules_are_short():
    lines = {p.name: len(p.read_text().splitlines()) for p in TRAIN.glob("*.py")}
    assert max(lines.values()) <= 600, sorted(lines.items(), key=lambda kv: -kv[1])[:3]
