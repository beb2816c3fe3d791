"""The package draws as the pipeline it is: load -> compress -> export -> runtime, on a torch-free base. Every
import in the source (lazy ones inside functions included) is read with ``ast`` and held to docs/ARCHITECTURE.md's
rules, so a change that makes two layers lean on each other fails here."""

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "edgeir"
BASE = ("graphs", "bundle", "files", "configfile", "errors", "timing", "progress")
ABOVE_BASE = ("export", "runtime", "compress", "models", "load", "train", "commands", "cli", "report")
# (layer, what it must not import); each row is one of the architecture's rules.
FORBIDDEN = {
    "runtime": ("export", "compress", "models", "load", "train", "commands", "cli", "report"),
    "export": ("runtime", "compress", "commands", "cli", "train", "report"),
    "load": ("compress", "export", "runtime", "train", "commands", "cli", "report"),
    "models": ("load", "compress", "export", "runtime", "train", "commands", "cli", "report"),
    "compress": ("commands", "cli", "runtime", "report"),
    "train": ("compress", "export", "runtime", "commands", "cli", "report"),
    "report": ("runtime", "commands", "cli"),
    "diffusion": ("models", "compress", "export", "runtime", "load", "train", "commands", "cli", "report"),
    "tasks": ABOVE_BASE,
    "data": ABOVE_BASE,
    "metrics": ABOVE_BASE,
    "evaluate": ABOVE_BASE,
    "devices": ABOVE_BASE,
    **{base: ABOVE_BASE for base in BASE},
}


def layer(parts: tuple[str, ...]) -> str:
    return parts[0].removesuffix(".py")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported edgeir layer) for every import statement in ``path``."""
    rel = path.relative_to(PACKAGE).parts
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ["edgeir", *rel[:-1]][: len(rel) - node.level + 1]
            names = [".".join(base + ([node.module] if node.module else []))]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "edgeir" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def broken_rules() -> list[str]:
    broken = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        src = layer(path.relative_to(PACKAGE).parts)
        for line, dst in imports(path):
            if dst in FORBIDDEN.get(src, ()):
                broken.add(f"edgeir/{path.relative_to(PACKAGE)}:{line} ({src} imports {dst})")
    return sorted(broken)


def test_every_import_runs_one_way():
    assert broken_rules() == []


def test_the_check_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """A planted break, in both of the forms a reader might miss, is caught."""
    fake = tmp_path / "edgeir"
    (fake / "runtime").mkdir(parents=True)
    (fake / "runtime" / "x.py").write_text("def f():\n    from edgeir.export import bundle\n")
    (fake / "runtime" / "y.py").write_text("from ..compress import pipeline\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert broken_rules() == ["edgeir/runtime/x.py:2 (runtime imports export)",
                              "edgeir/runtime/y.py:1 (runtime imports compress)"]


def test_every_layer_has_its_place():
    """A new package or top-level module is placed in the rules before it lands (the CLI layers, on top, may
    import anything)."""
    layers = {layer(p.relative_to(PACKAGE).parts) for p in PACKAGE.glob("*") if p.suffix == ".py" or p.is_dir()}
    layers -= {"__init__", "__main__", "__pycache__", "weights"}
    assert layers - set(FORBIDDEN) - {"cli", "commands"} == set()
