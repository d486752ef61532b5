"""The file moves a run waits on, as run on the loop's staging threads: its resource files in,
its output files out. Each returns the failure that ends the run, or None."""

import logging
from pathlib import Path

from . import staging
from .identities import RunAs
from .processes import write_refusal

log = logging.getLogger("batchsite.worker")


def download_resource_files(resource_files: list, directory: Path, account: str, run_as: RunAs) -> dict | None:
    """Fetch the resource files; the failure (also in stderr.txt) if one failed.

    The directory was made ready for the run first (`prepare_run_directory`), and
    every write goes through no link (tasks.rundirs).
    """
    try:
        staging.download(resource_files, directory / "wd", account=account, owner=run_as.owner)
    except staging.StagingError as exc:
        write_refusal(directory, f"{exc}: {exc.failure['details']}")
        log.info("%s: %s", directory, exc)
        return exc.failure
    return None


def upload_output_files(output_files: list, workdir: Path, account: str, succeeded: bool) -> dict | None:
    """Upload what the run qualifies for; the failure if one could not go."""
    try:
        staging.upload(output_files, workdir, account=account, succeeded=succeeded)
    except staging.StagingError as exc:
        log.info("%s: %s", workdir, exc)
        return exc.failure
    return None
