"""The layout's rules that import-linter cannot see (.importlinter holds the rest)."""

import ast
import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("accounts", "batchapi", "batchsite", "jobs", "nodes", "tasks")
DOMAIN = ("jobs", "tasks", "nodes")
LONGEST = 360  # lines: a module of the domain is read in one sitting


def project_modules(packages=PACKAGES):
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_import_contracts_hold():
    """Layers, the node agent's place and no cycles: `lint-imports` as `make test` runs it."""
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_every_module_of_jobs_and_tasks_has_its_layer():
    """A new module must be placed in the kinds contract, or the contract would not see it."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    declared = {m.strip() for layer in config["importlinter:contract:kinds"]["layers"].split("\n")
                for m in layer.split(":") if m.strip()}
    undeclared = []
    for path in project_modules(("jobs", "tasks")):
        name = module_name(path)
        if path.name in ("__init__.py", "apps.py") and name.count(".") == 1 or name in ("jobs", "tasks"):
            continue
        if not any(name == d or name.startswith(d + ".") for d in declared):
            undeclared.append(name)
    assert undeclared == []


STATE_FIELDS = {"state", "previous_state", "state_transition_time", "previous_state_transition_time"}
# Rows of other machines, whose states are not a job's or a task's.
OTHER_STATES = {"WorkerState", "NodeTaskState"}


def state_writes(tree: ast.AST):
    """`.update(state=…)` (and its bookkeeping fields) outside the transition helper."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "update", "bulk_update", "update_or_create"):
            for keyword in node.keywords:
                value = keyword.value
                other = (isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name)
                         and value.value.id in OTHER_STATES)
                if keyword.arg in STATE_FIELDS and not other:
                    yield node.lineno
            if node.func.attr == "bulk_update" and any(
                    isinstance(c, ast.Constant) and c.value in STATE_FIELDS
                    for arg in node.args for c in ast.walk(arg)):
                yield node.lineno


def test_only_the_transition_helper_writes_a_job_or_task_state():
    found = {}
    for path in project_modules():
        if path == ROOT / "jobs" / "transitions.py":
            continue
        lines = list(state_writes(ast.parse(path.read_text())))
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    assert found == {}


def test_the_state_rule_sees_a_state_update():
    """The rule above can fail: a hand-written compare-and-set is caught."""
    tree = ast.parse("Task.objects.filter(pk=1, state='active').update(state='running')")
    assert list(state_writes(tree)) == [1]
    tree = ast.parse("Worker.objects.filter(pk=1).update(state=WorkerState.STOPPED)")
    assert list(state_writes(tree)) == []


def inner_imports(path: Path):
    """Imports of project modules inside a function, with no comment saying why."""
    source = path.read_text()
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom):
                names = [inner.module or ""] if inner.level == 0 else ["."]
            elif isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            else:
                continue
            if not any(n == "." or n.split(".")[0] in PACKAGES for n in names):
                continue
            said = "#" in lines[inner.lineno - 1] or lines[inner.lineno - 2].strip().startswith("#")
            if not said:
                yield inner.lineno


def test_no_import_inside_a_function_dodges_a_cycle():
    found = {str(p.relative_to(ROOT)): lines for p in project_modules() if (lines := list(inner_imports(p)))}
    assert found == {}


@pytest.mark.parametrize("package", DOMAIN)
def test_no_module_of_the_domain_is_longer_than_a_sitting(package):
    long = {str(p.relative_to(ROOT)): n for p in project_modules((package,))
            if (n := len(p.read_text().splitlines())) > LONGEST}
    assert long == {}
