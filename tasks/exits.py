"""Exit conditions: what a task's way of ending asks of its job and its dependents.

Batch's rules (exitConditions): the options for an exit code come from the first
of `exitCodes` that lists it, else the first of `exitCodeRanges` that holds it,
else `default` — except exit code 0, which `default` never covers (list 0
explicitly for anything but the defaults). A task that could not start (a
program not found, a resource file that would not download) takes
`preProcessingError`, else `default`; a failed output upload takes the options
of its exit code if that was listed, else `fileUploadError`, else `default`.
Within the options chosen, a missing jobAction is none for exit code 0 and
terminate for every other condition; a missing dependencyAction is satisfy for
exit code 0 and block for every other condition.

The jobAction is carried out only when the task fails (it has a failureInfo)
and its job's onTaskFailure is performexitoptionsjobaction; setting one on a
job whose onTaskFailure is noaction is refused when the task is added.
"""

from dataclasses import dataclass

from batchapi.errors import invalid_property
from batchapi.input import INT32_MAX, INT32_MIN

JOB_ACTIONS = ("none", "disable", "terminate")
DEPENDENCY_ACTIONS = ("satisfy", "block")

EXIT_CODE = "exitCode"
PRE_PROCESSING_ERROR = "preProcessingError"
FILE_UPLOAD_ERROR = "fileUploadError"

# failureInfo codes that mean the task never started (preProcessingError) or its
# outputs did not upload (fileUploadError); every other failure is judged by exit code.
PRE_PROCESSING_CODES = {"CommandProgramNotFound", "ResourceFileDownloadError", "ResourceFilePathInvalid"}
FILE_UPLOAD_CODES = {"FileUploadError"}


@dataclass(frozen=True)
class ExitOptions:
    job_action: str
    dependency_action: str


def condition_of(failure: dict | None) -> str:
    code = (failure or {}).get("code")
    if code in PRE_PROCESSING_CODES:
        return PRE_PROCESSING_ERROR
    if code in FILE_UPLOAD_CODES:
        return FILE_UPLOAD_ERROR
    return EXIT_CODE


def options_for(exit_conditions: dict | None, *, exit_code: int | None, condition: str = EXIT_CODE) -> ExitOptions:
    """The exit options that apply to a task that ended this way."""
    conditions = exit_conditions or {}
    clean = condition == EXIT_CODE and exit_code == 0
    listed = _listed(conditions, exit_code) if exit_code is not None else None
    if condition == PRE_PROCESSING_ERROR:
        chosen = conditions.get("preProcessingError")
    elif listed is not None:
        chosen = listed
    elif condition == FILE_UPLOAD_ERROR:
        chosen = conditions.get("fileUploadError")
    else:
        chosen = None
    if chosen is None and not clean:
        chosen = conditions.get("default")
    chosen = chosen or {}
    return ExitOptions(
        job_action=chosen.get("jobAction") or ("none" if clean else "terminate"),
        dependency_action=chosen.get("dependencyAction") or ("satisfy" if clean else "block"),
    )


def _listed(conditions: dict, exit_code: int) -> dict | None:
    for entry in conditions.get("exitCodes") or []:
        if int(entry["code"]) == exit_code:
            return entry.get("exitOptions") or {}
    for entry in conditions.get("exitCodeRanges") or []:
        if int(entry["start"]) <= exit_code <= int(entry["end"]):
            return entry.get("exitOptions") or {}
    return None


def validate(exit_conditions: dict | None, *, on_task_failure: str) -> None:
    """Refuse an exitConditions body Batch would refuse (InvalidPropertyValue)."""
    if not exit_conditions:
        return
    if not isinstance(exit_conditions, dict):
        raise invalid_property("exitConditions", "expected an object")
    unknown = set(exit_conditions) - {"exitCodes", "exitCodeRanges", "preProcessingError", "fileUploadError",
                                      "default"}
    if unknown:
        raise invalid_property(f"exitConditions.{sorted(unknown)[0]}", "not a property of exitConditions")
    options = []
    for entry in exit_conditions.get("exitCodes") or []:
        if not isinstance(entry, dict) or not _is_int(entry.get("code")):
            raise invalid_property("exitConditions.exitCodes", "each entry needs an integer code")
        options.append(("exitCodes", entry.get("exitOptions")))
    for entry in exit_conditions.get("exitCodeRanges") or []:
        if (not isinstance(entry, dict) or not _is_int(entry.get("start")) or not _is_int(entry.get("end"))
                or int(entry["start"]) > int(entry["end"])):
            raise invalid_property("exitConditions.exitCodeRanges", "each entry needs integers start <= end")
        options.append(("exitCodeRanges", entry.get("exitOptions")))
    for name in ("preProcessingError", "fileUploadError", "default"):
        if name in exit_conditions:
            options.append((name, exit_conditions[name]))
    for name, opts in options:
        if opts is None:
            continue
        if not isinstance(opts, dict) or set(opts) - {"jobAction", "dependencyAction"}:
            raise invalid_property(f"exitConditions.{name}.exitOptions", "expected jobAction and dependencyAction")
        if "jobAction" in opts:
            if opts["jobAction"] not in JOB_ACTIONS:
                raise invalid_property(f"exitConditions.{name}.jobAction", f"one of {', '.join(JOB_ACTIONS)}")
            if on_task_failure == "noaction":
                raise invalid_property(f"exitConditions.{name}.jobAction",
                               "a jobAction needs a job whose onTaskFailure is performexitoptionsjobaction")
        if "dependencyAction" in opts and opts["dependencyAction"] not in DEPENDENCY_ACTIONS:
            raise invalid_property(f"exitConditions.{name}.dependencyAction", "one of satisfy, block")


def _is_int(value) -> bool:
    """An int32, as Batch's exit codes are (or its decimal digits)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):  # the CLI sends integers as strings
        digits = value[1:] if value.startswith("-") else value
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 10):
            return False
        value = int(value)
    return isinstance(value, int) and INT32_MIN <= value <= INT32_MAX
