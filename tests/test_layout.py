"""The layout's rules that import-linter cannot see (.importlinter holds the rest)."""

import ast
import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("accounts", "batchapi", "batchsite", "jobs", "nodes", "pools", "tasks")
DOMAIN = ("jobs", "tasks", "pools", "nodes")
LONGEST = 350  # lines: a module of the domain is read in one sitting


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


def test_every_module_of_jobs_tasks_and_pools_has_its_layer():
    """A new module must be placed in the kinds contract, or the contract would not see it."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    declared = {m.strip() for layer in config["importlinter:contract:kinds"]["layers"].split("\n")
                for m in layer.split(":") if m.strip()}
    undeclared = []
    for path in project_modules(("jobs", "tasks", "pools")):
        name = module_name(path)
        if path.name in ("__init__.py", "apps.py") and name.count(".") == 1 or name in ("jobs", "tasks", "pools"):
            continue
        if not any(name == d or name.startswith(d + ".") for d in declared):
            undeclared.append(name)
    assert undeclared == []


STATE_FIELDS = {"state", "previous_state", "state_transition_time", "previous_state_transition_time"}
# Rows whose states are their own: a preparation or release run on a node.
OTHER_STATES = {"NodeTaskState"}
WRITES = {"update", "bulk_update", "update_or_create", "get_or_create"}


def other_state(value: ast.AST) -> bool:
    return (isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name)
            and value.value.id in OTHER_STATES)


def state_items(node: ast.AST):
    """(field, value) pairs a call's keywords, `**{...}`, `defaults={...}` or `dict(...)` hold."""
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values):
            if isinstance(key, ast.Constant):
                yield key.value, value
            elif key is None:  # {**other}
                yield from state_items(value)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        for keyword in node.keywords:
            yield from ([(keyword.arg, keyword.value)] if keyword.arg else state_items(keyword.value))


def state_writes(tree: ast.AST):
    """Lines that write a job's or task's state outside the transition helper: `.update(state=…)`
    and its kin (keywords, `**{…}`, `defaults=`), and `x.state = …` followed by `x.save()`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES:
            pairs = []
            for keyword in node.keywords:
                if keyword.arg is None or keyword.arg == "defaults":
                    pairs += list(state_items(keyword.value))
                else:
                    pairs.append((keyword.arg, keyword.value))
            if any(field in STATE_FIELDS and not other_state(value) for field, value in pairs):
                yield node.lineno
            if node.func.attr == "bulk_update" and any(
                    isinstance(c, ast.Constant) and c.value in STATE_FIELDS
                    for arg in node.args for c in ast.walk(arg)):
                yield node.lineno
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            saved = {call.func.value.id for call in ast.walk(node)
                     if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                     and call.func.attr == "save" and isinstance(call.func.value, ast.Name)}
            for assign in ast.walk(node):
                if not isinstance(assign, ast.Assign):
                    continue
                for target in assign.targets:
                    targets, values = [target], [assign.value]
                    if isinstance(target, ast.Tuple) and isinstance(assign.value, ast.Tuple):
                        targets, values = target.elts, assign.value.elts
                    for each, value in zip(targets, values):
                        if (isinstance(each, ast.Attribute) and each.attr in STATE_FIELDS
                                and isinstance(each.value, ast.Name) and each.value.id in saved
                                and not other_state(value)):
                            yield assign.lineno


def test_only_the_transition_helper_writes_a_job_or_task_state():
    found = {}
    for path in project_modules():
        if path == ROOT / "jobs" / "transitions.py":
            continue
        lines = list(state_writes(ast.parse(path.read_text())))
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    assert found == {}


@pytest.mark.parametrize("source", [
    "Task.objects.filter(pk=1, state='active').update(state='running')",
    "Task.objects.filter(pk=1).update(**{'state': TaskState.RUNNING})",
    "Job.objects.update_or_create(pk=1, defaults=dict(state=JobState.ACTIVE))",
    "def f(task):\n    task.state = TaskState.COMPLETED\n    task.save()",
    "def f(task):\n    task.state, task.end_time = TaskState.COMPLETED, now\n    task.save()",
    "ComputeNode.objects.filter(name='n').update(state=NodeState.IDLE)",
])
def test_the_state_rule_sees_a_state_write(source):
    """The rule above can fail: each way of writing a state by hand is caught."""
    assert list(state_writes(ast.parse(source)))


@pytest.mark.parametrize("source", [
    "NodeTask.objects.filter(pk=1).update(state=NodeTaskState.COMPLETED)",
    "def f(task):\n    task.state = TaskState.RUNNING  # what the update wrote, not saved",
    "def f(row):\n    row.state = NodeTaskState.COMPLETED\n    row.save()",
])
def test_the_state_rule_lets_other_machines_and_mirrors_be(source):
    assert list(state_writes(ast.parse(source))) == []


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
