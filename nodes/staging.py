"""Resource files in before a command runs, output files out after it (Batch's file staging).

Files go to and come from a Django storage (settings.STORAGES["batchsite"]: a folder
under the data directory by default; any Django storage backend can take its
place). Each Batch account has its own containers, the folders of its folder
(`<account>/<container>/<blob>`): a task reads and writes its job's account's
containers only. A container is named by
- `autoStorageContainerName: "inputs"`, or
- a URL: `storage://inputs`, or an Azure blob container URL such as
  `https://account.blob.core.windows.net/inputs?sv=…`, which stands for the local
  container `inputs`, so that task definitions written for Azure run unchanged
  (the SAS is not needed and not checked).

Which specs are valid is `tasks.file_specs`'s to say (the API checks them
before they are stored). Symlinks are never followed out: outputs that are symlinks are skipped,
and downloads never write through one.
"""

import os
import re
import stat
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from django.core.files import File
from django.core.files.storage import storages

from tasks.beneath import open_beneath
from tasks.file_specs import container_of, relative_path
from tasks.rundirs import WORKER, Owner, open_directory, write_beneath

HTTP_TIMEOUT = 60  # seconds without a byte before a download fails


class StagingError(Exception):
    """A file that could not be staged: becomes the task's failureInfo."""

    def __init__(self, code: str, message: str, **details: str):
        super().__init__(message)
        self.failure = {"category": "usererror", "code": code, "message": message,
                        "details": [{"name": k, "value": str(v)} for k, v in details.items()]}


def storage():
    return storages["batchsite"]


# --- in --------------------------------------------------------------------------------


def download(resource_files: list, workdir: Path, *, account: str, owner: Owner = WORKER) -> None:
    """Fetch every resource file into workdir, or raise StagingError for the first that fails.

    Containers are the job's account's. Files are written beneath workdir through
    no symlink (tasks.rundirs) and belong to `owner`, the user the task runs as.
    """
    try:
        wd = open_directory(workdir)
    except OSError as exc:
        raise StagingError("ResourceFileDownloadError", "A resource file could not be downloaded",
                           Message=f"the working directory cannot be used: {exc}") from exc
    try:
        for rf in resource_files:
            file_path = str(rf.get("filePath") or "")
            try:
                if rf.get("httpUrl"):
                    _download_url(str(rf["httpUrl"]), wd, relative_path(file_path).parts, rf.get("fileMode"), owner)
                else:
                    container = container_of(str(rf.get("storageContainerUrl") or rf.get("autoStorageContainerName")))
                    base = relative_path(file_path).parts if file_path else ()
                    _download_container(f"{account}/{container}", str(rf.get("blobPrefix") or ""), wd, base,
                                        rf.get("fileMode"), owner)
            except (OSError, ValueError, urllib.error.URLError) as exc:
                source = rf.get("httpUrl") or rf.get("storageContainerUrl") or rf.get("autoStorageContainerName")
                raise StagingError("ResourceFileDownloadError", "A resource file could not be downloaded",
                                   Source=source, FilePath=file_path, Message=str(exc)) from exc
    finally:
        os.close(wd)


def _download_url(url: str, wd: int, parts: tuple, mode: str | None, owner: Owner) -> None:
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("httpUrl must be an http or https URL")
    if not parts:
        raise ValueError("filePath is required with httpUrl")
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:  # noqa: S310 (scheme checked)
        write_beneath(wd, list(parts), response, owner=owner, mode=mode)


def blob_names(container: str, prefix: str = "") -> list[str]:
    """Every file of a container (its path in the storage: account/container) starting with prefix."""
    store, names, folders = storage(), [], [""]
    if not store.exists(container):
        return []
    while folders:
        folder = folders.pop()
        dirs, files = store.listdir(f"{container}/{folder}".rstrip("/"))
        folders += [f"{folder}{d}/" for d in dirs]
        names += [f"{folder}{f}" for f in files if f"{folder}{f}".startswith(prefix)]
    return sorted(names)


def _download_container(container: str, prefix: str, wd: int, base: tuple, mode, owner: Owner) -> None:
    store = storage()
    for name in blob_names(container, prefix):
        parts = [*base, *relative_path(name).parts]
        with store.open(f"{container}/{name}", "rb") as source:
            write_beneath(wd, parts, source, owner=owner, mode=mode)


# --- out -------------------------------------------------------------------------------


def wanted(output_file: dict, *, succeeded: bool) -> bool:
    condition = str((output_file.get("uploadOptions") or {}).get("uploadCondition", "taskcompletion")).lower()
    return condition == "taskcompletion" or (condition == "tasksuccess") == succeeded


def upload(output_files: list, workdir: Path, *, account: str, succeeded: bool) -> list[str]:
    """Upload the outputs whose uploadCondition the run met to the account's containers;
    the blob names written (container/name).

    Raises StagingError for the first pattern that could not be uploaded.
    """
    written = []
    task_root = workdir.parent.resolve()
    for of in output_files:
        if not wanted(of, succeeded=succeeded):
            continue
        pattern = str(of.get("filePattern") or "")
        destination = (of.get("destination") or {}).get("container") or {}
        try:
            container = container_of(str(destination.get("containerUrl") or ""))
            path = str(relative_path(destination["path"])) if destination.get("path") else ""
            written += _upload_pattern(relative_path(pattern, may_climb=1), workdir, task_root, account, container,
                                       path)
        except (OSError, ValueError) as exc:
            raise StagingError("FileUploadError", "An output file could not be uploaded",
                               FilePattern=pattern, Message=str(exc)) from exc
    return written


def _glob_regex(pattern: str) -> re.Pattern:
    """A filePattern (relative, '/'-separated) as a regex: `**` any depth, `*` and `?` within a name."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 1)) > i:
            out.append("[" + pattern[i + 1:end].replace("!", "^", 1) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _matching_files(pattern: PurePosixPath, workdir: Path) -> list[tuple[Path, str]]:
    """Regular files matching the pattern, with their names relative to its fixed leading part.

    Walks without following symlinks (a link to / or a loop costs nothing), and
    leaves symlinked files out: nothing leaves with the outputs that is not the task's.
    """
    parts = pattern.parts
    first_wild = next((i for i, p in enumerate(parts) if any(ch in p for ch in "*?[")), None)
    if first_wild is None:  # one named file
        file = Path(os.path.normpath(workdir / pattern))
        if file.is_symlink() or not file.is_file():
            raise ValueError(f"{pattern} does not exist or is not a regular file")
        return [(file, file.name)]
    base = Path(os.path.normpath(workdir.joinpath(*parts[:first_wild])))
    if base.is_symlink() or not base.is_dir():
        return []
    wanted = _glob_regex("/".join(parts[first_wild:]))
    found = []
    for folder, dirs, files in os.walk(base, followlinks=False):
        for name in files:
            file = Path(folder) / name
            relative = file.relative_to(base).as_posix()
            if wanted.match(relative) and not file.is_symlink() and file.is_file():
                found.append((file, relative))
    return sorted(found)


def _upload_pattern(pattern: PurePosixPath, workdir: Path, task_root: Path, account: str, container: str,
                    path: str) -> list[str]:
    has_wildcard = any(ch in str(pattern) for ch in "*?[")
    store, written = storage(), []
    root = open_directory(task_root)
    try:
        for file, relative in _matching_files(pattern, workdir):
            if not file.resolve().is_relative_to(task_root):
                continue
            if has_wildcard:
                name = f"{path}/{relative}" if path else relative
            else:
                name = path or relative  # a named file: path is the blob's whole name
            blob = f"{container}/{name}"
            # Opened again beneath the task directory, refusing any symlink: what the walk
            # saw may have been swapped meanwhile (an unconfined task lives on).
            beneath = Path(os.path.relpath(file, workdir.parent)).parts
            fd = open_beneath(root, list(beneath), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as source:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise ValueError(f"{relative} is not a regular file")
                if store.exists(f"{account}/{blob}"):
                    store.delete(f"{account}/{blob}")
                store.save(f"{account}/{blob}", File(source))
            written.append(blob)
    finally:
        os.close(root)
    return written
