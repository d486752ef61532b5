"""A job's preparation and release tasks on this node, for the agent loop (`nodes.agent`).

Batch runs a job's preparation task on a node before the job's first task there (its
tasks wait, `preparing`, when it must succeed first) and its release task on each
node that prepared the job, once the job ends.
"""

import logging

from jobs.models import Job
from tasks import node_tasks
from tasks.models import NodeTask
from tasks.services import node_task_runs
from tasks.services import runs as task_runs

from .processes import Command
from .slots import node_task_key

log = logging.getLogger("batchsite.worker")


class PreparationAndRelease:
    """Part of `nodes.agent.WorkerLoop`: it holds the node's `work`, `name` and `launch`."""

    def start_due_releases(self) -> None:
        for job in node_tasks.releases_due(self.name):
            if not self.work.holds(node_task_key(job.pk, node_tasks.RELEASE)):
                self.launch_node_task(job, node_tasks.RELEASE)

    def launch_node_task(self, job: Job, kind: str) -> None:
        row = node_task_runs.start(job, self.name, kind)
        self.launch(row, Command.of_node_task(job, self.name, kind))

    def node_task_ended(self, row: NodeTask, exit_code: int | None, failure: dict | None) -> None:
        job = row.job
        outcome = node_task_runs.finish(row, row.attempt, exit_code, failure)
        log.info("job %s: %s task exited %s: %s", job.batch_id, row.kind, exit_code, outcome or "no longer ours")
        if row.kind != node_tasks.PREPARATION:
            return
        if outcome == "retried":
            self.launch_node_task(job, row.kind)
            return
        waiting = self.work.waiting_for(job.pk)
        for work in waiting:
            self.work.remove(work)
        if outcome == "succeeded":
            for task in task_runs.start_prepared_tasks([work.row for work in waiting]):
                self.launch(task, Command.of_task(task))
        elif waiting:  # failed for good (or no longer ours): the tasks go back for other workers
            task_runs.requeue_tasks(node_id=self.name, attempts={work.row.pk: work.attempt for work in waiting})
