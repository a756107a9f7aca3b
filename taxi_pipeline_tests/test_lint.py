"""The house stays in order: ruff, with the project's own configuration (pyproject.toml: pyflakes,
import order, a cap on McCabe complexity), passes over the code, the tests and the benchmarks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_ruff_passes_with_the_projects_configuration():
    done = subprocess.run([str(Path(sys.executable).with_name("ruff")), "check", "taxi_pipeline", "taxi_pipeline_tests",
                           "benchmarks"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


def _imports(root: Path) -> dict[str, set[str]]:
    """Every module of the package, with the package's modules it imports (inside functions too)."""
    import ast

    modules = {".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            graph[module] |= {n for n in names if n in modules and n != module}
    return graph


def test_no_module_of_the_package_imports_itself_through_others():
    graph = _imports(ROOT / "taxi_pipeline")
    cycles = []
    for start in graph:  # a path from a module's imports back to it is a cycle
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module == start:
                cycles.append(start)
                break
            if module not in seen:
                seen.add(module)
                todo.extend(graph[module])
    assert not cycles, f"modules on an import cycle: {sorted(cycles)}"
