"""The packages form a DAG: none imports a package of a higher layer (docs/architecture.md draws the picture).

Read from the source's own import statements (lazy imports inside functions included), so a new upward import
fails here by name, file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "distributed_ssl"
# Bottom to top; packages on one line may import each other.
LAYERS = [
    ["util"],
    ["config"],
    ["data"],
    ["modalities"],
    ["models", "losses"],
    ["methods"],
    ["evaluation", "tracking", "export", "preview"],
    ["engine"],
    ["launch", "curation", "retrain"],
    ["cli", "cli_ops", "cli_parsing"],
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("distributed_ssl."):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("distributed_ssl.")]
    return found


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert packages | modules <= set(RANK), f"place these in LAYERS: {sorted((packages | modules) - set(RANK))}"


def test_no_package_imports_a_higher_layer():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = path.relative_to(PACKAGE).with_suffix("").parts[0]
        if own not in RANK:
            continue
        for line, module in _imports(path):
            target = module.split(".")[1]
            if target in RANK and RANK[target] > RANK[own]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module} ({own} < {target})")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)
