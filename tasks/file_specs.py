"""What a valid resource file or output file is: Add Task's checks, and the names and paths in them.

The node agent stages the files (`nodes.staging`); the API and the admin check
them here before anything is stored. Path rules (the Batch docs', and one of
ours): a resource file's `filePath` is relative to the task's working directory
and may not leave it (no absolute path, no `..`); an output `filePattern` is
relative to the working directory and may reach the task directory above it
(`../std*.txt` uploads stdout and stderr), never further.
"""

import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from batchapi.errors import invalid_property

UPLOAD_CONDITIONS = ("tasksuccess", "taskfailure", "taskcompletion")
CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def container_of(reference: str) -> str:
    """The local container a container name or URL stands for."""
    parts = urlsplit(reference)
    if parts.scheme == "storage":
        name = parts.netloc
    elif parts.scheme in ("http", "https"):
        name = parts.path.strip("/").split("/")[0]
    else:
        name = reference
    if not CONTAINER_NAME.match(name or "") or ".." in name:
        raise ValueError(f"{reference!r} names no container")
    return name


def relative_path(path: str, *, may_climb: int = 0) -> PurePosixPath:
    """A relative path with at most `may_climb` leading `..` and none elsewhere."""
    pure = PurePosixPath(path.replace("\\", "/"))
    parts = [p for p in pure.parts if p != "."]
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", path):
        raise ValueError("must be a relative path")
    climbs = 0
    while climbs < len(parts) and parts[climbs] == "..":
        climbs += 1
    if climbs > may_climb or ".." in parts[climbs:]:
        raise ValueError("may not leave the task's directory")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _kinds(spec: dict, *, strings=(), objects=()) -> None:
    """Batch's string and object properties are those: anything else is refused, never str()-ed or
    looked into (a list as filePath, a string as destination)."""
    for key in strings:
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise ValueError(f"{key} must be a string")
    for key in objects:
        if spec.get(key) is not None and not isinstance(spec[key], dict):
            raise ValueError(f"{key} must be an object")


def validate_resource_files(files: list, name: str = "resourceFiles") -> None:
    """Add Task's checks, as 400 InvalidPropertyValue naming the property."""
    for i, rf in enumerate(files):
        where = f"{name}[{i}]"
        if not isinstance(rf, dict):
            raise invalid_property(where, "must be an object")
        try:
            _kinds(rf, strings=("httpUrl", "storageContainerUrl", "autoStorageContainerName", "blobPrefix", "filePath",
                                "fileMode"), objects=("identityReference",))
        except ValueError as exc:
            raise invalid_property(where, str(exc)) from None
        sources = [k for k in ("httpUrl", "storageContainerUrl", "autoStorageContainerName") if rf.get(k)]
        if len(sources) != 1:
            raise invalid_property(where, "exactly one of httpUrl, storageContainerUrl and "
                                          "autoStorageContainerName must be given")
        try:
            if sources[0] == "httpUrl":
                if urlsplit(str(rf["httpUrl"])).scheme not in ("http", "https"):
                    raise ValueError("httpUrl must be an http or https URL")
                if not rf.get("filePath"):
                    raise ValueError("filePath is required with httpUrl")
            else:
                container_of(str(rf[sources[0]]))
            if rf.get("filePath"):
                relative_path(str(rf["filePath"]))
            if rf.get("fileMode") is not None and not re.fullmatch(r"0?[0-7]{3}", str(rf["fileMode"])):
                raise ValueError("fileMode must be an octal mode such as 0755")
        except ValueError as exc:
            raise invalid_property(where, str(exc)) from None


def validate_output_files(files: list, name: str = "outputFiles") -> None:
    for i, of in enumerate(files):
        where = f"{name}[{i}]"
        if not isinstance(of, dict):
            raise invalid_property(where, "must be an object")
        try:
            _kinds(of, strings=("filePattern",), objects=("destination", "uploadOptions"))
            _kinds(of.get("destination") or {}, objects=("container",))
            _kinds((of.get("destination") or {}).get("container") or {}, strings=("containerUrl", "path"),
                   objects=("identityReference",))
            _kinds(of.get("uploadOptions") or {}, strings=("uploadCondition",))
            relative_path(str(of.get("filePattern") or ""), may_climb=1)
            if not of.get("filePattern"):
                raise ValueError("filePattern is required")
            container = ((of.get("destination") or {}).get("container") or {})
            container_of(str(container.get("containerUrl") or ""))
            if container.get("path"):
                relative_path(str(container["path"]))
            condition = str((of.get("uploadOptions") or {}).get("uploadCondition", "taskcompletion")).lower()
            if condition not in UPLOAD_CONDITIONS:
                raise ValueError(f"uploadCondition must be one of {', '.join(UPLOAD_CONDITIONS)}")
        except ValueError as exc:
            raise invalid_property(where, str(exc)) from None
