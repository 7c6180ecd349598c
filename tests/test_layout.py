"""The package's shape: layers in folders, no import circles, no private names across modules.

Read from the source with ``ast`` (every import, those inside functions included: a lazy import
is still a dependency), so the rules hold for code paths no other test happens to run.
"""

import ast
from pathlib import Path

import fff

ROOT = Path(fff.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict) -> list[tuple[str, list[str]]]:
    """(imported fff module, names taken from it) for every import in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.split(".")[0] == "fff"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "fff":
                continue
            for alias in node.names:  # "from fff.x import y": y may be a module itself
                sub = f"{base}.{alias.name}"
                found.append((sub, []) if sub in modules else (base, [alias.name]))
    return [(target, names) for target, names in found if target in modules]


def _graph():
    modules = _modules()
    return modules, {name: _imports(name, path, modules) for name, path in modules.items()}


def test_at_most_twelve_modules_at_the_root_of_fff():
    root = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(root) <= 12, root
    folders = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert {"backends", "measure", "explain", "models", "study", "report", "cli"} <= folders


def test_no_import_circles():
    _, graph = _graph()
    # A package's __init__ importing its own submodules is how a package re-exports; a module
    # importing its parent package for a name is then a circle in form only when the parent
    # imports nothing back, so edges to a module's own parent package are left out.
    edges = {name: {t for t, _ in targets if not name.startswith(t + ".") and t != name}
             for name, targets in graph.items()}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_no_private_name_is_imported_across_modules():
    _, graph = _graph()
    crossing = [f"{name} imports {target}.{n}" for name, targets in graph.items() for target, names in targets
                for n in names if n.startswith("_") and not n.startswith("__") and n != "_native"]
    assert not crossing, crossing


def test_only_the_registry_names_the_built_in_stacks():
    """Above the stacks, a stack is known only through fff.backends: no module outside the
    backends' own code imports one of them directly."""
    _, graph = _graph()
    stacks = ("fff.backends.torch_eager", "fff.backends.openvino")
    allowed = ("fff.backends", "fff.explain.cache_sim")  # the one-shot simulate() runs an OpenVINO model by design
    direct = [f"{name} imports {target}" for name, targets in graph.items() for target, _ in targets
              if target.startswith(stacks) and not name.startswith(allowed)
              and target != "fff.backends.openvino.conversion" and target != "fff.backends.openvino.runner"]
    assert not direct, direct
