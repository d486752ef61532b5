"""Hooks for the schemathesis CLI run by tests/test_openapi_schemathesis.py (SCHEMATHESIS_HOOKS).

The check: every error answer comes in Batch's shape. The before_call hook: a valid case's path
names objects that exist (test_openapi_schemathesis's live_batch makes them) and its account header
the user's account, so it reaches the views' logic instead of stopping at 404 or 403; what destroys
its target (Delete Job, Terminate Job, Delete Task) takes a fresh one each time, so the others stay
usable for the rest of the run.
"""

import zlib

import schemathesis
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

ACCOUNT, JOB_ID, TASK_ID = "batchsite", "job", "task"  # the account: the test user's only one
FILES = ("stdout.txt", "wd/out/result.csv")
# As many as valid cases of one operation can use (generation's max-examples).
DOOMED = 25
DOOMED_JOBS = [f"doomed-job-{i}" for i in range(2 * DOOMED)]  # Delete Job, then Terminate Job
DOOMED_TASKS = [f"doomed-task-{i}" for i in range(DOOMED)]
DESTROYS = {"DELETE /jobs/{jobId}": DOOMED_JOBS[:DOOMED], "POST /jobs/{jobId}/terminate": DOOMED_JOBS[DOOMED:],
            "DELETE /jobs/{jobId}/tasks/{taskId}": DOOMED_TASKS}
_used: dict[str, int] = {}


@schemathesis.check
def batch_error_shape(ctx, response, case):
    """A 4xx or 5xx carries Batch's error body: JSON with code and message {lang, value}."""
    if response.status_code < 400 or case.method.upper() == "HEAD":  # an answer to HEAD has no body
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"A {response.status_code} that is not JSON") from None
    message = body.get("message") if isinstance(body, dict) else None
    if not (isinstance(body, dict) and isinstance(body.get("code"), str) and isinstance(message, dict)
            and isinstance(message.get("lang"), str) and isinstance(message.get("value"), str)):
        raise AssertionError(f"A {response.status_code} outside Batch's error shape")
    return None


def valid(case, location: ParameterLocation) -> bool:
    component = case.meta.components.get(location) if case.meta else None
    return component is not None and component.mode == GenerationMode.POSITIVE


@schemathesis.hook
def before_call(context, case, kwargs):
    if valid(case, ParameterLocation.HEADER) and case.headers and "batchsite-account" in case.headers:
        case.headers["batchsite-account"] = ACCOUNT  # an account the user is a member of
    if not valid(case, ParameterLocation.PATH):
        return  # an invalid path stays as generated
    params = case.path_parameters
    params["jobId"] = JOB_ID
    if "taskId" in params:
        params["taskId"] = TASK_ID
    if "filePath" in params:  # a file that exists, or the generated path (a third of the time)
        choice = zlib.crc32(str(params["filePath"]).encode("utf-8", "surrogatepass")) % 3
        if choice < len(FILES):
            params["filePath"] = FILES[choice]
    operation = f"{case.method.upper()} {case.path}"
    if operation in DESTROYS:
        doomed = DESTROYS[operation]
        index = _used[operation] = _used.get(operation, -1) + 1
        params["taskId" if "taskId" in params else "jobId"] = doomed[min(index, len(doomed) - 1)]
