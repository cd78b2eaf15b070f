"""The package's import graph, read with `ast` (imports inside functions included): no cycles, imports run down
the layers of docs/design.md, and the training and tuning scripts are leaves only the command line imports (tune
and crossval drive train)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "app" / "medcolor"

# Lower layers never import higher ones (docs/design.md, "Import layers").
LAYERS = [
    {"errors", "_resources", "config", "io", "plots", "runfolder"},
    {"data", "data.specs", "data.policies", "data.images", "data.readers", "data.cache", "data.block", "data.items",
     "data.memory", "data.summary", "data.folds", "data.volumes", "data.dicom", "data.labels", "data.leakage", "data.medmnist", "colorizers", "backbones", "autoencoders", "losses", "metrics", "stats",
     "calibration"},
    {"models", "modes", "summary", "gradcam"},
    {"classification", "reconstruction", "tasks"},
    {"recipes", "spaces"},
    {"callbacks", "learner"},
    {"runs", "model_card"},
    {"chains", "sweeps"},
    {"train"},
    {"tune"},
    {"evaluate", "interpret", "compare", "report", "html_report", "export"},
    {"ensembles"},
    {"crossval"},
    {"cli", "__init__", "__main__"},
]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(rel.parts) if rel.name != "__init__" or len(rel.parts) == 1 else ".".join(rel.parts[:-1])


def imports_of(path: Path, name: str) -> set[str]:
    """Package modules that `name` imports anywhere in its file (top level or inside functions)."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    if name == "__init__":
        package = []
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module:
                found.add(target)
            found |= {f"{target}.{a.name}".lstrip(".") for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("medcolor"):
            found.add(node.module.removeprefix("medcolor").lstrip("."))
            found |= {f"{node.module.removeprefix('medcolor').lstrip('.')}.{a.name}".lstrip(".") for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("medcolor.") for a in node.names if a.name.startswith("medcolor.")}
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py") if "_recipe_files" not in p.parts}
    return {name: {m for m in imports_of(path, name) if m in files and m != name} for name, path in files.items()}


def test_every_module_has_a_layer():
    placed = set().union(*LAYERS)
    assert set(graph()) - placed == set()


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
    level = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    upward = [f"{a} -> {b}" for a, deps in graph().items() for b in deps
              if level[b] > level[a] and not (a.startswith("data") and b == "data")]
    assert upward == []


def test_only_the_command_line_tuning_and_cross_validation_import_the_training_script():
    assert {m for m, deps in graph().items() if "train" in deps} <= {"cli", "tune", "crossval"}
    assert {m for m, deps in graph().items() if "tune" in deps} <= {"cli"}


def test_task_differences_live_behind_the_task_interface():
    offenders = [p.name for p in PACKAGE.rglob("*.py") if p.name not in ("tasks.py", "cli.py")
                 and ("recipe.task ==" in p.read_text() or "r.task ==" in p.read_text())]
    assert offenders == []


def test_every_module_docs_design_names_exists():
    """docs/design.md is the map of the code: a module it names that is gone (or renamed) is a defect of the map."""
    import re

    design = (PACKAGE.parents[1] / "docs" / "design.md").read_text()
    named = set(re.findall(r"`((?:data/)?[a-z_]+)\.py`", design))
    assert named and not {m for m in named if not (PACKAGE / f"{m}.py").is_file()}
    assert set(re.findall(r"`(tests/[a-z_]+\.py)`", design)) <= {str(p.relative_to(PACKAGE.parents[1]))
                                                                  for p in PACKAGE.parents[1].glob("tests/*.py")}
