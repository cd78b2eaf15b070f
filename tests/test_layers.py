"""The package's import graph, read with `ast` (imports inside functions included): no cycles, imports run down
the layers of docs/design.md, and the training and tuning scripts are leaves only the command line imports (tune
and crossval drive train)."""
import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "app" / "medcolor"

# The layers are the subpackages, lowest first; the package root (cli, __init__, __main__) sits on top. A module
# imports only from its own layer or lower ones (docs/design.md, "Layout").
LAYERS = ["core", "data", "nets", "tasks", "training", "results", ""]
ROOT = "__init__"  # the package root's module name in the graph


def layer_of(module: str) -> int:
    head = module.split(".")[0]
    return LAYERS.index(head if head in LAYERS and (PACKAGE / head).is_dir() else "")


def module_name(path: Path) -> str:
    """'training.train', 'tasks' (tasks/__init__.py), '__init__' (the package root)."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(rel.parts) if rel.name != "__init__" or len(rel.parts) == 1 else ".".join(rel.parts[:-1])


def _from(base: str, names, known) -> list[str]:
    """`from base import a, b`: the submodules named, else the module `base` itself ('' is the package root)."""
    submodules = [f"{base}.{a.name}".lstrip(".") for a in names if f"{base}.{a.name}".lstrip(".") in known]
    return submodules or [base or ROOT]


def package_imports(path: Path, name: str):
    """(module imported, line, lazy) for each import of a package module in `name`'s file; the package root is
    '__init__'."""
    known = {module_name(p) for p in PACKAGE.rglob("*.py")}
    package = name.split(".") if path.name == "__init__.py" and name != ROOT else name.split(".")[:-1]
    tree = ast.parse(path.read_text())
    lazy = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(f)}
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            targets = _from(base, node.names, known)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "medcolor":
            targets = _from(node.module.removeprefix("medcolor").lstrip("."), node.names, known)
        elif isinstance(node, ast.Import):
            targets = [a.name.removeprefix("medcolor").lstrip(".") or ROOT for a in node.names
                       if a.name.split(".")[0] == "medcolor"]
        for target in targets:
            yield target, node.lineno, id(node) in lazy


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "_files" not in str(p.relative_to(PACKAGE))}


def graph() -> dict[str, set[str]]:
    files = modules()
    return {name: {m for m, _, _ in package_imports(path, name) if m in files and m != name}
            for name, path in files.items()}


def test_every_module_sits_in_a_layer_subpackage_or_is_the_command_line():
    at_root = {m for m in modules() if layer_of(m) == len(LAYERS) - 1}
    assert at_root == {ROOT, "__main__", "cli"}


def test_no_import_cycles_lazy_imports_included():
    g, done, stack = graph(), set(), []

    def visit(node):
        if node in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(node):] + [node]))
        if node in done:
            return
        stack.append(node)
        for dep in sorted(g[node]):
            visit(dep)
        stack.pop()
        done.add(node)

    for node in sorted(g):
        visit(node)


def test_imports_run_down_the_layers():
    upward = [f"{a} -> {b}" for a, deps in graph().items() for b in deps if layer_of(b) > layer_of(a)]
    assert upward == []


def test_only_the_command_line_imports_the_package_root():
    """The root's lazy API (load_recipe, build_learner, ...) is for users; a module below that asks it for
    anything (its version, say) makes a circle through the lazy imports."""
    assert {m for m, deps in graph().items() if ROOT in deps} <= {"__main__", "cli"}


# Imports inside functions keep start-up light (cli imports a command's modules only when it runs) but hide
# dependencies from a reader; a new one should be a choice, so their number may only go down.
LAZY_IMPORT_BUDGET = {"cli": 43, "other": 145}


def test_lazy_imports_of_package_modules_stay_within_budget():
    lazy = {}
    for name, path in modules().items():
        for target, line, is_lazy in package_imports(path, name):
            if is_lazy and target in modules():
                lazy.setdefault("cli" if name == "cli" else "other", set()).add(f"{name}:{line}")
    counts = {k: len(v) for k, v in lazy.items()}
    assert all(counts.get(k, 0) <= budget for k, budget in LAZY_IMPORT_BUDGET.items()), counts


def test_only_the_command_line_tuning_and_cross_validation_import_the_training_script():
    assert {m for m, deps in graph().items() if "training.train" in deps} <= {"cli", "training.tune",
                                                                               "results.crossval"}
    assert {m for m, deps in graph().items() if "training.tune" in deps} <= {"cli"}


def test_task_differences_live_behind_the_task_interface():
    """No module but the task registry compares a task's name (`recipe.task == "classification"`, `spec.task !=
    ...`): what differs between the tasks is asked of `tasks.task_of(recipe)` / `tasks.TASKS`."""
    from medcolor.tasks.interface import TASKS

    found = []
    for module, path in modules().items():
        if module == "tasks.interface":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                about = {n.attr if isinstance(n, ast.Attribute) else n.id for side in sides for n in ast.walk(side)
                         if isinstance(n, (ast.Attribute, ast.Name))}
                values = {n.value for side in sides for n in ast.walk(side) if isinstance(n, ast.Constant)}
                if "task" in about and values & set(TASKS):
                    found.append(f"{module}:{node.lineno}")
    assert found == []


def test_docs_design_names_every_module_and_no_other():
    """docs/design.md is the map of the code: each module is named as `sub/module.py` (its path under
    app/medcolor); a module it names that is gone, or a module it does not name, is a defect of the map."""
    design = (PACKAGE.parents[1] / "docs" / "design.md").read_text()
    named = set(re.findall(r"`((?!tests/|__)(?:[a-z_]+/)?[a-z_]+\.py)`", design))
    files = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "_files" not in str(p)
             and p.name not in ("__init__.py", "__main__.py")}
    assert named - files == set(), "named in docs/design.md but missing"
    assert files - named == set(), "modules docs/design.md does not name"
    assert set(re.findall(r"`(tests/[a-z_]+\.py)`", design)) <= {str(p.relative_to(PACKAGE.parents[1]))
                                                                  for p in PACKAGE.parents[1].glob("tests/*.py")}


def _constants(path: Path):
    """(value, line) of every str/int constant in a module's code (docstrings included)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)) and not isinstance(node.value, bool):
            yield node.value, node.lineno


def _offenders(names, owners: set[str], match=lambda value, name: value == name) -> list[str]:
    return [f"{module}:{line} {value!r}" for module, path in modules().items() if module not in owners
            for value, line in _constants(path) if isinstance(value, str) and any(match(value, n) for n in names)]


def test_architecture_names_are_written_only_where_they_are_registered():
    from medcolor.core.archs import ARCHS

    assert _offenders(ARCHS.names(), {"core.archs"}) == []


def test_run_folder_file_names_are_written_only_by_runfolder():
    """Every file and folder name of a run folder (model.json, plots/loss.png, p_ columns, ...) is a constant of
    core/runfolder.py; a literal elsewhere is a second owner of the format."""
    from medcolor.core import runfolder

    names = [v for k, v in vars(runfolder).items() if k.isupper() and isinstance(v, str) and len(v) >= 2
             and re.fullmatch(r"[\w.-]+", v)]
    assert len(names) > 30 and {"p_", "pred_", "plots", "-lrfind", "eval-"} <= set(names)
    assert _offenders(names, {"core.runfolder"}, lambda value, name: value == name) == []


def test_names_of_colorizers_and_modes_are_not_compared_outside_their_registries():
    """`m.mode == 2`, `colorizer != "none"`: the Mode or colorizer entry is asked instead."""
    from medcolor.nets.colorizers import COLORIZERS

    owners = {"nets.colorizers", "core.archs"}
    found = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if module in owners or not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            about = {n.attr if isinstance(n, ast.Attribute) else n.id for side in sides for n in ast.walk(side)
                     if isinstance(n, (ast.Attribute, ast.Name))}
            about |= {n.slice.value for side in sides for n in ast.walk(side)  # r["mode"], r["colorizer"]
                      if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant)}
            values = {n.value for side in sides for n in ast.walk(side) if isinstance(n, ast.Constant)}
            if ("mode" in about and values & {1, 2, 3}) or ("colorizer" in about and values & set(COLORIZERS)):
                found.append(f"{module}:{node.lineno}")
    assert found == []
