"""Task and job statistics ($expand=stats), from what the worker measured of each run.

The worker reaps each child with wait4(), whose rusage gives the run's user and
kernel CPU time and the blocks it read and wrote (the kernel counts blocks that
reached the disk, in 512-byte units: reads served from the page cache count
nothing). Those stand for Batch's readIOps/writeIOps and readIOGiB/writeIOGiB.

- A task's stats (a JSON column) sum its runs, retries included; its waitTime is
  from its creation to the start of its latest run, as Batch defines it.
- A job's stats are sums kept in its count shards, added in the transaction that
  records each run's end, so reading them is O(1) like the counts. numTaskRetries
  counts every retry; waitTime sums the waitTime of its completed tasks.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Sum

from batchapi.wire import duration, iso

from . import counts
from .models import TaskCountShard

GIB = 1024 ** 3
BLOCK = 512  # bytes in one of rusage's ru_inblock / ru_oublock units


@dataclass(frozen=True)
class Usage:
    """What one run used."""

    user_cpu: float = 0.0
    kernel_cpu: float = 0.0
    read_iops: int = 0
    write_iops: int = 0

    @classmethod
    def of(cls, rusage) -> "Usage":
        return cls(user_cpu=rusage.ru_utime, kernel_cpu=rusage.ru_stime,
                   read_iops=rusage.ru_inblock, write_iops=rusage.ru_oublock)

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.user_cpu + other.user_cpu, self.kernel_cpu + other.kernel_cpu,
                     self.read_iops + other.read_iops, self.write_iops + other.write_iops)


# The job sums kept in each TaskCountShard, besides the counts.
JOB_FIELDS = ("user_cpu", "kernel_cpu", "wall_clock", "wait_time", "read_iops", "write_iops", "retries")


def run_ended(task, usage: Usage | None, now: datetime, *, completed: bool) -> tuple[dict, dict]:
    """(the task's new stats, the job's share) for a run of `task` that ended now.

    `task` carries the run's start and its stats so far (as the claim read them).
    """
    usage = usage or Usage()
    wall = (now - task.start_time).total_seconds() if task.start_time else 0.0
    wait = (task.start_time - task.creation_time).total_seconds() if task.start_time else 0.0
    old = task.stats or {}
    stats = {
        "startTime": old.get("startTime") or iso(task.start_time or now),
        "lastUpdateTime": iso(now),
        "userCPUTime": old.get("userCPUTime", 0.0) + usage.user_cpu,
        "kernelCPUTime": old.get("kernelCPUTime", 0.0) + usage.kernel_cpu,
        "wallClockTime": old.get("wallClockTime", 0.0) + wall,
        "readIOps": old.get("readIOps", 0) + usage.read_iops,
        "writeIOps": old.get("writeIOps", 0) + usage.write_iops,
        "waitTime": max(wait, 0.0),
    }
    job = {"user_cpu": usage.user_cpu, "kernel_cpu": usage.kernel_cpu, "wall_clock": wall,
           "read_iops": usage.read_iops, "write_iops": usage.write_iops,
           "wait_time": max(wait, 0.0) if completed else 0.0, "retries": 0 if completed else 1}
    return stats, job


def _io(iops: int) -> tuple[str, float]:
    """(the count as Batch's int64 string, the GiB those blocks hold)."""
    return str(iops), round(iops * BLOCK / GIB, 9)


def task_stats_wire(task, url: str) -> dict:
    s = task.stats or {}
    reads, read_gib = _io(s.get("readIOps", 0))
    writes, write_gib = _io(s.get("writeIOps", 0))
    start = s.get("startTime") or iso(task.creation_time)
    return {
        "url": url, "startTime": start, "lastUpdateTime": s.get("lastUpdateTime") or start,
        "userCPUTime": duration(timedelta(seconds=s.get("userCPUTime", 0.0))),
        "kernelCPUTime": duration(timedelta(seconds=s.get("kernelCPUTime", 0.0))),
        "wallClockTime": duration(timedelta(seconds=s.get("wallClockTime", 0.0))),
        "readIOps": reads, "writeIOps": writes, "readIOGiB": read_gib, "writeIOGiB": write_gib,
        "waitTime": duration(timedelta(seconds=s.get("waitTime", 0.0))),
    }


def job_stats_wire(job, url: str, now: datetime) -> dict:
    """JobStatistics from the job's shard sums and counts: a few rows, whatever the job's size."""
    sums = {k: v or 0 for k, v in TaskCountShard.objects.filter(job_id=job.pk).aggregate(
        **{k: Sum(k) for k in JOB_FIELDS}).items()}
    current = counts.read(job.pk)
    reads, read_gib = _io(sums["read_iops"])
    writes, write_gib = _io(sums["write_iops"])
    return {
        "url": url, "startTime": iso(job.creation_time), "lastUpdateTime": iso(now),
        "userCPUTime": duration(timedelta(seconds=sums["user_cpu"])),
        "kernelCPUTime": duration(timedelta(seconds=sums["kernel_cpu"])),
        "wallClockTime": duration(timedelta(seconds=sums["wall_clock"])),
        "readIOps": reads, "writeIOps": writes, "readIOGiB": read_gib, "writeIOGiB": write_gib,
        "numSucceededTasks": str(current.succeeded), "numFailedTasks": str(current.failed),
        "numTaskRetries": str(sums["retries"]),
        "waitTime": duration(timedelta(seconds=sums["wait_time"])),
    }
