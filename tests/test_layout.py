"""The import direction of docs/design.md, enforced with ast; no print() in library code."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "spikeconv"

ALLOWED = {
    "errors": set(),
    "atomic": set(),
    "cache": set(),
    "extras": set(),
    "native": {"atomic", "cache"},
    "layers": set(),
    "neuron": {"errors", "native"},
    "quant": {"errors"},
    "convert": {"neuron", "quant", "layers", "errors"},
    "sim": {"neuron", "errors", "native", "layers"},
    "analysis": {"sim", "neuron", "errors", "layers", "convert"},
    "models": {"layers", "errors"},
    "data": {"errors", "atomic", "cache", "neuron"},
    "tasks": {"models", "sim", "analysis", "convert", "quant", "data", "errors", "neuron", "layers", "atomic", "cache",
              "native", "export"},
    "export": {"neuron", "convert", "errors", "layers", "sim", "atomic"},
}


def _package_imports(path: Path, part: str) -> set[str]:
    """The top-level parts of spikeconv that ``path`` imports (relative imports resolved from its folder)."""
    tree = ast.parse(path.read_text())
    here = list(path.relative_to(PACKAGE).parent.parts)  # folders below spikeconv/
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level >= 1:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                target = base + (node.module.split(".") if node.module else [])
                if target:
                    found.add(target[0])
            elif node.module and node.module.startswith("spikeconv."):
                found.add(node.module.split(".")[1])
    return found - {part}


def test_import_direction():
    for part, allowed in ALLOWED.items():
        files = [PACKAGE / f"{part}.py"] if (PACKAGE / f"{part}.py").exists() else list((PACKAGE / part).rglob("*.py"))
        for path in files:
            bad = _package_imports(path, part) - allowed
            assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_no_print_and_small_files():
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, f"{path} is longer than 400 lines"
        if "cli" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"]
        assert not calls, f"print() in library code: {path}"
