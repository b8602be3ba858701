"""The architecture as imports: one direction (streams -> solver -> schemas), no circles, the
worker never imports the console, the CLI or the tools, and no product code imports `tests/`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "solver", "streams")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every product module `path` imports (at any depth: lazy imports count too)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                module = ".".join([*anchor, *(node.module.split(".") if node.module else [])])
            else:
                module = node.module or ""
            subs = {f"{module}.{alias.name}" for alias in node.names}
            out.update(subs)
            if node.module or not node.level:
                out.add(module)
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {m for m in _imports(path, name) if m in modules and m != name}
        graph[name] = targets
    return graph


def _package(module: str) -> str:
    return module.split(".")[0]


def test_no_product_module_imports_tests() -> None:
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            assert "tests." not in " ".join(_imports(path, _module_name(path))), (
                f"{path.relative_to(ROOT)} imports tests"
            )


def test_imports_point_one_way() -> None:
    order = {"schemas": 0, "solver": 1, "streams": 2}
    for module, targets in _graph().items():
        for target in targets:
            assert order[_package(target)] <= order[_package(module)], (module, target)


def test_the_worker_does_not_import_the_console_the_cli_or_the_tools() -> None:
    for module, targets in _graph().items():
        if module.startswith(("streams.worker", "streams.kafka")):
            bad = {
                t
                for t in targets
                if t.startswith(("streams.console", "streams.cli", "streams.tools"))
            }
            assert not bad, (module, bad)


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` (a path that comes back to its start), if there is one."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            found = visit(nxt, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def _unit(module: str) -> str:
    """streams.worker.app -> streams.worker: a circle between subpackages is a circle of the
    architecture even when no pair of modules forms one."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "streams" and len(parts) > 2 else module


def test_no_import_circle() -> None:
    graph = _graph()
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        u = _unit(module)
        units.setdefault(u, set()).update(_unit(t) for t in targets if _unit(t) != u)
    assert _circle(graph) is None, " -> ".join(_circle(graph) or [])
    assert _circle(units) is None, " -> ".join(_circle(units) or [])
