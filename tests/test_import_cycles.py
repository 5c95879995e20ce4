r"""No import cycle inside ``pyg_glic``, and no function-local imports in ``pyg_glic.nn``.

The graph is built from the source with :mod:`ast`, without importing anything:
a node per module of ``pyg_glic`` (:func:`pkgutil.walk_packages`), an edge
``A -> B`` for every import of ``B`` that runs when ``A`` is imported (module
level, including ``try``/``if`` blocks and class bodies; not function bodies and
not ``if TYPE_CHECKING:`` blocks), absolute or relative (resolved against ``A``).
Importing ``a.b.c`` also runs the ``__init__`` of ``a.b`` and ``a``, so the
edge goes to every package on the way that is not a package of ``A`` itself
(those are already being imported when ``A`` runs, as Python does it).
``pyg_glic/__init__.py`` imports its subpackages lazily in ``__getattr__``: a
function body, so no edge; an ``__init__.py`` that does ``from .x import y`` at
module level has an edge to ``x``.

The second check walks the function bodies of ``pyg_glic/nn``: an import of a
``pyg_glic`` module there is how a cycle gets hidden (the module imports fine,
the cycle bites at call time), so there must be none, except of modules that
need an optional package (triton) at import time, which are imported on first
use on purpose.
"""
import ast
import pkgutil
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pyg_glic

ROOT = "pyg_glic"
#: Packages that are not install requirements: a module that imports one of them at
#: module level may be imported inside a function (on first use).
OPTIONAL = {"triton"}


def _modules() -> Dict[str, Tuple[Path, bool]]:
    # module name -> (source file, is a package)
    mods = {ROOT: (Path(pyg_glic.__file__), True)}

    def fail(name):  # walk_packages imports the packages; one that fails must not vanish
        raise ImportError(f"cannot import package {name}")
    for info in pkgutil.walk_packages(pyg_glic.__path__, prefix=ROOT + ".", onerror=fail):
        spec = info.module_finder.find_spec(info.name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        mods[info.name] = (Path(spec.origin), info.ispkg)
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(body: List[ast.stmt], in_function: bool
                  ) -> Iterator[Tuple[ast.stmt, bool]]:
    # (import statement, whether it sits in a function body), in execution scope order
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _import_nodes(node.body, True)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.orelse, in_function)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                sub = getattr(node, field, None)
                if isinstance(sub, list):
                    stmts = []
                    for s in sub:  # except handlers and match cases hold statements
                        stmts.extend(s.body if isinstance(s, (ast.ExceptHandler,
                                                              ast.match_case)) else [s])
                    yield from _import_nodes(stmts, in_function)


def _resolve(node: ast.stmt, name: str, is_pkg: bool, mods) -> List[Tuple[str, str]]:
    # [(pyg_glic module imported, top-level package name)] of one import statement
    out = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            out.append(alias.name)
    else:
        if node.level:
            base = name.split(".") if is_pkg else name.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            out.append(sub if sub in mods else target)
    return [(t, t.split(".")[0]) for t in out]


def _owner(target: str, mods) -> Optional[str]:
    # the innermost module of pyg_glic that `target` names (a name in a module: it)
    while target and target not in mods:
        target = target.rpartition(".")[0]
    return target or None


def import_graph() -> Tuple[Dict[str, Set[str]], Dict[str, List[Tuple[str, int]]],
                            Dict[str, Set[str]]]:
    r"""``(edges, local, optional)``: the module-level import graph of pyg_glic, the
    function-local imports of pyg_glic modules per module (``(target, line)``), and
    the third-party top-level packages each module imports at module level."""
    mods = _modules()
    edges: Dict[str, Set[str]] = {m: set() for m in mods}
    local: Dict[str, List[Tuple[str, int]]] = {m: [] for m in mods}
    third: Dict[str, Set[str]] = {m: set() for m in mods}
    for name, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        own = set()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            own.add(".".join(parts[:i]))
        for node, in_function in _import_nodes(tree.body, False):
            for target, top in _resolve(node, name, is_pkg, mods):
                if top != ROOT:
                    if not in_function:
                        third[name].add(top)
                    continue
                mod = _owner(target, mods)
                if mod is None or mod == name:
                    continue
                if in_function:
                    local[name].append((mod, node.lineno))
                    continue
                # the module and every package on the way that is not one of ours
                p = mod.split(".")
                for i in range(1, len(p) + 1):
                    dep = ".".join(p[:i])
                    if dep not in own and dep in mods:
                        edges[name].add(dep)
    return edges, local, third


def find_cycle(edges: Dict[str, Set[str]]) -> Optional[List[str]]:
    r"""One cycle of the graph as ``[a, b, ..., a]``, or ``None``."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {n: WHITE for n in edges}
    for start in sorted(edges):
        if color[start] != WHITE:
            continue
        stack = [(start, iter(sorted(edges[start])))]
        path = [start]
        color[start] = GREY
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = BLACK
                stack.pop()
                path.pop()
                continue
            if color.get(nxt, BLACK) == GREY:
                return path[path.index(nxt):] + [nxt]
            if color.get(nxt) == WHITE:
                color[nxt] = GREY
                stack.append((nxt, iter(sorted(edges[nxt]))))
                path.append(nxt)
    return None


def test_no_import_cycle():
    edges, _, _ = import_graph()
    # the walk found the modules, and the edges it should (relative imports resolved)
    assert len(edges) > 50 and "pyg_glic.nn.conv.glic_attention" in edges
    assert any(e.startswith("pyg_glic.nn.") for e in edges["pyg_glic.nn.conv.glic_attention"])
    assert "pyg_glic.nn.conv" in edges["pyg_glic.nn"]  # from .conv import ... in __init__
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle inside pyg_glic: " + " -> ".join(cycle)


def test_no_function_local_imports_in_nn():
    _, local, third = import_graph()
    optional = {m for m, tops in third.items() if tops & OPTIONAL}
    found = [f"{m.replace('.', '/')}.py:{line} imports {t}"
             for m, imports in sorted(local.items()) if m.startswith(ROOT + ".nn")
             for t, line in imports if t not in optional]
    assert not found, ("function-local imports of pyg_glic modules in pyg_glic.nn "
                       "(import them at module level; only modules that need an optional "
                       "package may be imported on first use):\n" + "\n".join(found))


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
