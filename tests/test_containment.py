"""A task is hostile code: what it tries, through a real worker and a real sandbox.

An operator of account B adds a task that tries what the audit's attacker did: read
and write the database, read the secret key, read the worker's environment (its
DATABASE_URL), read account A's task output, list the blob storage, signal the
worker. In the sandbox every attempt fails. Where no sandbox can be had and the
worker is told to run tasks unconfined, the same probes succeed: they are real.
"""

import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import BatchAccount, Membership, Role
from nodes.host import database_open_to_tasks
from nodes.identities import RunAs
from nodes.memfiles import TaskEnvironment, args_fd
from nodes.sandbox import Containment
from pools.models import SCHEDULABLE_STATES, ComputeNode
from tasks import counts
from tasks.files import task_dir
from tasks.models import Task, TaskState
from tasks.rundirs import prepare_run_directory, remove_tree

from .conftest import sandbox_missing, worker_command, worker_env
from .helpers import TASK_PYTHON, add, make_job, node, shared_file, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
needs_sandbox = pytest.mark.skipif(bool(sandbox_missing()), reason=sandbox_missing() or "")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching tasks to the task user needs a root worker")

PROBES = textwrap.dedent("""
    import json, os, signal, sys

    database, secret_key, worker_pid, other_stdout, storage_root, other_shared, host_socket = sys.argv[1:8]

    def attempt(name, action):
        try:
            results[name] = bool(action())
        except Exception as exc:
            results[name] = False
            errors[name] = f"{type(exc).__name__}: {exc}"

    def read(path):
        with open(path, "rb") as f:
            return f.read(64)

    def opens_for_writing(path):
        os.close(os.open(path, os.O_WRONLY))  # writing nothing: opening is the capability
        return True

    results, errors = {}, {}
    attempt("read the database", lambda: read(database))
    attempt("write the database", lambda: opens_for_writing(database))
    attempt("read the secret key", lambda: read(secret_key))
    attempt("read the worker's environment",
            lambda: b"DATABASE_URL" in open(f"/proc/{worker_pid}/environ", "rb").read())
    attempt("read another account's task output", lambda: b"ACCOUNT-A-SECRET" in read(other_stdout))
    attempt("list the storage root", lambda: "batchsite" in os.listdir(storage_root))
    attempt("signal the worker", lambda: os.kill(int(worker_pid), signal.SIGWINCH) is None)
    attempt("read another account's shared directory", lambda: b"ACCOUNT-A-SHARED" in read(other_shared))
    if host_socket:
        import socket
        attempt("connect to a host socket in /run",
                lambda: socket.socket(socket.AF_UNIX).connect(host_socket) is None)
    print(json.dumps({"results": results, "errors": errors, "account": os.environ.get("AZ_BATCH_ACCOUNT_NAME")}))
""")


def database_file() -> Path:
    """The file of the database the service uses: SQLite's own, or a PostgreSQL cluster's."""
    if connection.vendor == "sqlite":
        return Path(connection.settings_dict["NAME"])
    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        return Path(cursor.fetchone()[0]) / "PG_VERSION"


def operator_of(account: BatchAccount, username: str) -> APIClient:
    from django.contrib.auth.models import User

    user = User.objects.create_user(username=username, password="x-password-1")
    Membership.objects.create(user=user, account=account, role=Role.OPERATOR)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@contextlib.contextmanager
def host_socket():
    """A unix socket listening in the host's /run (where databases, D-Bus and container
    runtimes listen), or "" where this user cannot make one there."""
    if not os.access("/run", os.W_OK):
        yield ""
        return
    path = f"/run/batchsite-probe-{os.getpid()}.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen(8)
        try:
            yield path
        finally:
            os.unlink(path)


def run_probes(*worker_args: str, extra_env: dict | None = None) -> dict[str, dict]:
    """Account A has a task with output, a blob and a shared file; an operator of account B
    runs the probes as a task, and again as an admin task: {"nonadmin": report, "admin": report,
    "node": the node's row while it ran them}.

    Each account's tasks run in its own pool: A's on "probe-node", B's on "b-node".
    """
    job_a = make_job("payroll")
    [task_a] = add(job_a, "salaries", command="/bin/echo ACCOUNT-A-SECRET")
    container = settings.BATCHSITE_STORAGE_ROOT / "batchsite" / "private-container"
    container.mkdir(parents=True)
    (container / "blob.txt").write_text("A's data")
    a_shared = shared_file("a.txt", "ACCOUNT-A-SHARED\n")
    database = database_file()
    assert database.exists()

    env = worker_env(**(extra_env or {}))
    worker = subprocess.Popen(worker_command("--name", "probe-node", "--poll", "0.1", *worker_args), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b_worker = None
    with host_socket() as socket_path:
        try:
            wait_for(lambda: ComputeNode.objects.filter(name="probe-node", state__in=SCHEDULABLE_STATES).exists()
                     or worker.poll() is not None, timeout=60)
            assert worker.poll() is None, worker.stderr.read()
            wait_for(lambda: Task.objects.filter(pk=task_a.pk, state=TaskState.COMPLETED).exists(), timeout=60)
            mallory = operator_of(BatchAccount.objects.create(name="accountb"), "mallory")
            b_worker = subprocess.Popen(worker_command("--name", "b-node", "--account", "accountb", "--pool", "p",
                                                       "--poll", "0.1", *worker_args), env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            script = shared_file("probes.py", PROBES, account="accountb")
            args = [str(database), str(settings.DATA_DIR / "secret_key"), str(worker.pid),
                    str(task_dir(task_a) / "stdout.txt"), str(settings.BATCHSITE_STORAGE_ROOT), str(a_shared),
                    socket_path or '""']
            assert mallory.post("/batch/jobs", {"id": "probe", "poolInfo": {"poolId": "p"}},
                                format="json").status_code == 201
            command = " ".join([TASK_PYTHON, str(script), *args])
            response = mallory.post("/batch/jobs/probe/addtaskcollection", {"value": [
                {"id": "nonadmin", "commandLine": command},
                {"id": "admin", "commandLine": command, "userIdentity": {"autoUser": {"elevationLevel": "admin"}}},
            ]}, format="json")
            assert {r["status"] for r in response.json()["value"]} == {"success"}, response.content
            probes = Task.objects.filter(job__batch_id="probe")
            wait_for(lambda: probes.filter(state=TaskState.COMPLETED).count() == 2, timeout=60)
            node_row = ComputeNode.objects.get(name="b-node")
        finally:
            for each in filter(None, (worker, b_worker)):
                each.send_signal(signal.SIGTERM)
                each.wait(timeout=30)
    assert set(probes.values_list("node_id", flat=True)) == {"b-node"}  # B's pool's node, not A's
    reports = {"node": node_row}
    for probe in probes:
        out = (task_dir(probe) / "stdout.txt").read_text()
        assert probe.exit_code == 0, (out, (task_dir(probe) / "stderr.txt").read_text())
        reports[probe.batch_id] = json.loads(out)
    return reports


PROBED = {"read the database", "write the database", "read the secret key", "read the worker's environment",
          "read another account's task output", "list the storage root", "signal the worker",
          "read another account's shared directory"}


@needs_sandbox
def test_a_sandboxed_task_of_another_account_reaches_nothing_of_the_service():
    reports = run_probes()
    reports.pop("node")
    for who, report in reports.items():
        assert PROBED <= set(report["results"]), who
        assert report["results"] == dict.fromkeys(report["results"], False), (who, report["errors"])
        assert report["account"] == "accountb"  # the job's account, not "batchsite"


def test_the_same_probes_succeed_where_tasks_run_unconfined():
    """The probes are real: with no bubblewrap and --allow-unconfined, every one of them works."""
    reports = run_probes("--allow-unconfined", extra_env={"BATCHSITE_BWRAP": "/nonexistent/bwrap"})
    assert reports.pop("node").confined is False  # and its row said so
    for who, report in reports.items():
        assert PROBED <= set(report["results"]), who
        assert report["results"] == dict.fromkeys(report["results"], True), (who, report["errors"])
        assert report["account"] == "accountb"


def test_without_a_sandbox_the_worker_refuses_to_start_unless_told():
    result = subprocess.run(worker_command("--name", "refuses"), env=worker_env(
        BATCHSITE_BWRAP="/nonexistent/bwrap", BATCHSITE_ALLOW_UNCONFINED_TASKS="0"),
        capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "tasks cannot be sandboxed here" in result.stderr and "--allow-unconfined" in result.stderr
    assert not ComputeNode.objects.filter(name="refuses").exists()


def test_an_unconfined_worker_says_so_loudly():
    worker = subprocess.Popen(worker_command("--name", "loud", "--allow-unconfined", "--poll", "0.1"),
                              env=worker_env(BATCHSITE_BWRAP="/nonexistent/bwrap"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: ComputeNode.objects.filter(name="loud").exists() or worker.poll() is not None, timeout=60)
        node = ComputeNode.objects.get(name="loud")  # its row says so while it is in its pool
        assert not node.confined and node.containment.startswith("UNCONFINED")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    assert "TASKS RUN UNCONFINED" in worker.stderr.read()


# --- who a task runs as -------------------------------------------------------------------


WHOAMI = (f"{TASK_PYTHON} -c \"import os;"
          f" print(os.getuid(), open('/proc/self/status').read().split('CapEff:')[1].split()[0])\"")


ADMIN_PROBE = (f"{TASK_PYTHON} -c \"import os; open('mine', 'w');"
               " print(os.getuid(), os.access('/etc/shadow', os.R_OK))\"")


@needs_sandbox
@needs_root
def test_tasks_run_as_the_task_user_and_admin_tasks_as_root_of_their_own_namespace_only(run_worker):
    job = make_job("who")
    add(job, "plain", command=WHOAMI)
    add(job, "admin", command=ADMIN_PROBE, user_identity={"autoUser": {"elevationLevel": "admin"}})
    add(job, "as-root", command=WHOAMI, user_identity={"userName": "root"})
    add(job, "as-nobody", command=WHOAMI, user_identity={"userName": "nobody"})
    run_worker()
    out = {t.batch_id: (task_dir(t) / "stdout.txt").read_text().split() for t in Task.objects.filter(job=job)
           if not t.failure_info}
    task_user = pwd.getpwnam(settings.BATCHSITE_TASK_USER)
    assert out["plain"] == [str(task_user.pw_uid), "0000000000000000"]
    # Root to itself; to the host the task user: root's files stay closed, what it makes is not root's.
    assert out["admin"] == ["0", "False"]
    admin = Task.objects.get(job=job, key="admin")
    assert (task_dir(admin) / "wd" / "mine").stat().st_uid == task_user.pw_uid
    for refused in ("as-root", "as-nobody"):  # not among this node's users (BATCHSITE_NODE_USERS)
        task = Task.objects.get(job=job, key=refused)
        assert (task.state, task.exit_code, task.failure_info["code"]) == ("completed", None, "NodeUserNotFound")
        assert "BATCHSITE_NODE_USERS" in (task_dir(task) / "stderr.txt").read_text()


@needs_sandbox
@needs_root
def test_a_named_user_the_node_lists_is_used_but_never_root(tmp_path):
    job = make_job("named")
    add(job, "nobody", command=WHOAMI, user_identity={"userName": "nobody"})
    add(job, "root", command=WHOAMI, user_identity={"userName": "root"})
    result = subprocess.run(worker_command("--exit-when-idle", "--poll", "0.1"),
                            env=worker_env(BATCHSITE_NODE_USERS="nobody,root"), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    nobody = Task.objects.get(job=job, key="nobody")
    assert (task_dir(nobody) / "stdout.txt").read_text().split()[0] == str(pwd.getpwnam("nobody").pw_uid)
    root = Task.objects.get(job=job, key="root")
    assert root.failure_info["code"] == "NodeUserNotFound"
    assert "never run as root" in root.failure_info["message"]


# --- a task dies with its worker ---------------------------------------------------------------

LONG_TASK = textwrap.dedent("""
    import os, subprocess, sys, time, uuid
    ledger, marker = sys.argv[1], sys.argv[2]
    run = uuid.uuid4().hex
    subprocess.Popen(["sleep", "60." + marker])  # a grandchild, to be killed with the rest
    with open(ledger, "a", buffering=1) as f:
        f.write(f"start {run} {time.time()}\\n")
        for _ in range(600):
            f.write(f"alive {run} {time.time()}\\n")
            time.sleep(0.1)
""")


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@needs_sandbox
def test_a_killed_worker_takes_its_tasks_with_it_and_a_restart_takes_its_name_at_once(start_worker):
    ledger = shared_file("ledger.txt")
    marker = "424242"
    script = shared_file("long.py", LONG_TASK)
    job = make_job("long")
    [task] = add(job, "sleeper", command=f"{TASK_PYTHON} {script} {ledger} {marker}")
    first = start_worker("--name", "node-1", "--poll", "0.1")
    wait_for(lambda: ledger.exists() and "alive" in ledger.read_text(), timeout=60, what="the first run")
    wait_for(lambda: len(processes_with("60." + marker)) == 1, timeout=10, what="the grandchild")

    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = time.monotonic()
    wait_for(lambda: not processes_with(marker), timeout=2, what="the task's processes to end")
    assert time.monotonic() - killed_at < 2

    # Restarted under the same name at once (the heartbeat is still fresh): the dead
    # predecessor is recognised, its task requeued and run again.
    second = start_worker("--name", "node-1", "--poll", "0.1")
    wait_for(lambda: ComputeNode.objects.filter(name="node-1", pid=second.pid).exists() or second.poll() is not None,
             timeout=30, what="the restarted worker to register")
    assert second.poll() is None, second.stderr.read()
    wait_for(lambda: ledger.read_text().count("start ") == 2, timeout=60, what="the second run")
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0

    lines = [line.split() for line in ledger.read_text().splitlines()]
    runs = [run for kind, run, _ in lines if kind == "start"]
    second_start = next(float(at) for kind, run, at in lines if kind == "start" and run == runs[1])
    last_of_first = max(float(at) for kind, run, at in lines if run == runs[0])
    assert last_of_first < second_start  # the requeued run never overlapped the first
    task.refresh_from_db()
    assert task.requeue_count >= 1
    counts_now = counts.read(job.pk)
    assert counts_now.running + counts_now.active + counts_now.completed == 1


def test_a_second_worker_under_a_live_workers_name_is_refused(start_worker):
    first = start_worker("--name", "taken", "--poll", "0.1")
    wait_for(lambda: ComputeNode.objects.filter(name="taken", state__in=SCHEDULABLE_STATES).exists(), timeout=60)
    result = subprocess.run(worker_command("--name", "taken"), env=worker_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "is alive" in result.stderr
    assert ComputeNode.objects.get(name="taken").pid == first.pid


# --- the data directory is private -------------------------------------------------------------


def test_the_data_directory_and_what_is_in_it_are_private_whatever_the_umask(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "BATCHSITE_DATA_DIR": str(data), "DATABASE_URL": f"sqlite:///{data / 'db.sqlite3'}"}
    env.pop("BATCHSITE_SECRET_KEY", None)
    env.pop("SECRET_KEY", None)
    result = subprocess.run(worker_command()[:2] + ["migrate", "--no-input"], env=env, capture_output=True,
                            text=True, timeout=300, preexec_fn=lambda: os.umask(0))
    assert result.returncode == 0, result.stderr
    assert data.stat().st_mode & 0o777 == 0o700
    for name in ("db.sqlite3", "secret_key"):
        assert (data / name).stat().st_mode & 0o077 == 0, name


def test_the_jobs_page_warns_of_a_worker_that_runs_tasks_unconfined(client, owner):
    from django.utils import timezone

    node("boxed")
    client.force_login(owner)
    assert "Tasks run unconfined" not in client.get("/").content.decode()
    node("bare-node")
    ComputeNode.objects.filter(name="bare-node").update(confined=False, containment="UNCONFINED (no bubblewrap)",
                                                        heartbeat_at=timezone.now())
    page = client.get("/").content.decode()
    assert "Tasks run unconfined" in page and "bare-node" in page and "boxed" not in page


@pytest.mark.parametrize("identity, reason", [
    ({"userName": "alice", "autoUser": {"elevationLevel": "admin"}}, "mutually exclusive"),
    ({"autoUser": {"elevationLevel": "root"}}, "elevationLevel"),
    ({"autoUser": {"scope": "node"}}, "scope"),
    ({"user": "alice"}, "not a property"),
    ("admin", "userIdentity"),
])
def test_a_user_identity_batch_would_refuse_is_a_400(api, identity, reason):
    api.post("/batch/jobs", {"id": "ids", "poolInfo": {"poolId": "local"}}, format="json")
    response = api.post("/batch/jobs/ids/tasks", {"id": "t", "commandLine": "/bin/true", "userIdentity": identity},
                        format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "InvalidPropertyValue"
    assert reason in json.dumps(response.json()["values"])
    assert not Task.objects.exists()


def test_an_admin_auto_user_is_accepted_and_kept(api):
    api.post("/batch/jobs", {"id": "ids", "poolInfo": {"poolId": "local"}}, format="json")
    identity = {"autoUser": {"scope": "task", "elevationLevel": "Admin"}}
    assert api.post("/batch/jobs/ids/tasks", {"id": "t", "commandLine": "/bin/true", "userIdentity": identity},
                    format="json").status_code == 201
    assert api.get("/batch/jobs/ids/tasks/t").json()["userIdentity"] == {
        "autoUser": {"scope": "task", "elevationLevel": "admin"}}


@needs_sandbox
def test_a_tasks_loader_variables_reach_its_own_program_only(run_worker):
    """LD_PRELOAD and its kind would run the task's code in bubblewrap and setpriv, which run as
    root before the drop: they are set for the task's program alone (the loader's complaint
    about a library that is not there comes once, from that program)."""
    job = make_job("loader")
    add(job, "preload", command="/bin/true",
        environment_settings=[{"name": "LD_PRELOAD", "value": "/nonexistent/evil.so"},
                              {"name": "GCONV_PATH", "value": "/nonexistent"}, {"name": "LANGUAGE", "value": "x"}])
    add(job, "admin-preload", command="/bin/true", user_identity={"autoUser": {"elevationLevel": "admin"}},
        environment_settings=[{"name": "LD_PRELOAD", "value": "/nonexistent/evil.so"}])
    run_worker()
    for task in Task.objects.filter(job=job):
        stderr = (task_dir(task) / "stderr.txt").read_text()
        assert stderr.count("/nonexistent/evil.so") == 1, (task.batch_id, stderr)
        assert task.result == "success"


def test_nothing_of_a_tasks_environment_is_on_a_command_line_the_host_can_read():
    """bubblewrap takes its arguments from a memory file: the host's process list (and the
    sandbox's own first process) shows no variable of the task's, its token among them."""
    variables = TaskEnvironment({"AZ_BATCH_AUTHENTICATION_TOKEN": "secret", "PATH": "/usr/bin"})
    try:
        command = Containment.for_worker(allow_unconfined=True).command(
            ["/bin/true"], directory=Path("/tmp/t"), binds=[Path("/tmp/t")], run_as=RunAs("u", 1000, 1000),
            env=variables)
        short, fd = args_fd(command) if command[0].endswith("bwrap") else (command, None)
        assert "secret" not in " ".join(short)
        assert b"secret" in os.read(variables.fd, 4096)  # where the task's shell finds it, after the drop
        if fd is not None:
            assert short[:3] == [command[0], "--args", str(fd)]
            assert b"--ro-bind" in os.read(fd, 65536)
            os.close(fd)
    finally:
        variables.close()


def test_a_predecessor_is_dead_only_when_its_process_is_provably_gone_here():
    from django.utils import timezone

    from nodes.host import predecessor_is_dead, process_key

    host = socket.gethostname()
    alive = os.getppid()  # a process that lives on
    gone = subprocess.Popen(["/bin/true"])
    key_of_gone = process_key(gone.pid)
    gone.wait()  # its pid has just ended
    row = ComputeNode(name="w", hostname=host, pid=gone.pid, heartbeat_at=timezone.now(), process_key=key_of_gone)
    assert predecessor_is_dead(row, host)
    row.pid, row.process_key = alive, process_key(alive)
    assert not predecessor_is_dead(row, host)
    boot, namespace, pid, started = row.process_key.split("/")
    row.process_key = f"{boot}/{namespace}/{pid}/{int(started) + 1}"  # its pid, another process's now
    assert predecessor_is_dead(row, host)
    row.process_key = process_key(alive)
    assert not predecessor_is_dead(row, "another-host")
    row.process_key = f"another-boot/{namespace}/{pid}/{started}"  # a container of the same name
    assert not predecessor_is_dead(row, host)


def test_the_node_root_is_the_workers_alone(run_worker):
    root = settings.BATCHSITE_NODE_ROOT
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    run_worker()
    assert root.stat().st_mode & 0o777 == 0o700


def test_a_worker_warns_when_the_database_lets_tasks_in_without_a_password(run_worker):
    """The sandbox hides the credentials, not the port: a trusting PostgreSQL is said out loud."""
    open_to_tasks = database_open_to_tasks()
    if connection.vendor == "sqlite":
        assert open_to_tasks is None
    else:
        import psycopg  # there only where the database is PostgreSQL

        s = connection.settings_dict
        try:
            psycopg.connect(host=s["HOST"] or "localhost", port=s["PORT"] or 5432, dbname=s["NAME"],
                            user=s["USER"], passfile="/dev/null", password="", connect_timeout=3).close()
            trusting = True
        except psycopg.Error:
            trusting = False
        assert (open_to_tasks is not None) == trusting
    result = run_worker()
    assert ("without a password" in result.stderr) == (open_to_tasks is not None)


def deep_tree(parent: Path, name: str, depth: int = 5000) -> None:
    """Folders nested `depth` deep (made through descriptors: the path is longer than any PATH_MAX)."""
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    os.mkdir(name, dir_fd=fd)
    current = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    for _ in range(depth):
        os.mkdir("d", dir_fd=current)
        following = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=current)
        os.close(current)
        current = following
    os.close(current)


def test_a_tree_deeper_than_pythons_recursion_is_cleared_for_the_next_run_and_purged(tmp_path):
    """A task that leaves 5,000 nested folders where stdout.txt was must not stop the worker."""
    directory = tmp_path / "task"
    directory.mkdir()
    deep_tree(directory, "stdout.txt")
    out, err = prepare_run_directory(directory)
    os.close(out)
    os.close(err)
    assert (directory / "stdout.txt").is_file()
    deep_tree(tmp_path, "job")
    remove_tree(tmp_path / "job")
    assert not (tmp_path / "job").exists()



@pytest.mark.parametrize("name", ["A=B", "=", ""])
def test_an_environment_variable_name_no_process_can_carry_is_a_400(api, name):
    api.post("/batch/jobs", {"id": "env", "poolInfo": {"poolId": "local"}}, format="json")
    response = api.post("/batch/jobs/env/tasks", {"id": "t", "commandLine": "/bin/true",
                                                  "environmentSettings": [{"name": name, "value": "x"}]}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "InvalidPropertyValue")


@pytest.mark.parametrize("name", ["..", ".hidden", "a/b", "x" * 129])
def test_a_node_id_that_could_name_another_directory_is_refused(name):
    result = subprocess.run(worker_command("--name", name), env=worker_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "a node's id is 1 to 128 letters" in result.stderr
