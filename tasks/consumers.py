"""The task page's consumer: the task's state as it changes, and its output as it is written.

The worker writes stdout.txt and stderr.txt straight to disk, so new output is
found by looking at the files' sizes: four times a second while the page
follows a task that runs, never otherwise. The page says from which offsets it
wants output (on connect and reconnect), so nothing is sent twice or lost.
"""

import asyncio

from django.template.loader import render_to_string

from batchapi.input import INT64_MAX, bounded_int
from jobs.consumers import LivePage
from jobs.selectors import find_job

from . import logs
from .models import Task, TaskState
from .selectors import find_task

FOLLOW_SECONDS = 0.25


class TaskConsumer(LivePage):
    min_interval = 0.1

    def load(self) -> bool:
        kwargs = self.scope["url_route"]["kwargs"]
        account = self.account()
        job = account and find_job(account, kwargs["job_id"])
        self.task = job and find_task(job, kwargs["task_id"])
        if self.task is None:
            return False
        self.summary_sent = None
        self.offsets: dict[str, int] | None = None  # set by the page: where its viewers end
        self.follow = True
        self.ticker = None
        return True

    def keys(self) -> list:
        return [("job", self.task.job_id)]

    async def disconnect(self, code):
        if getattr(self, "ticker", None):
            self.ticker.cancel()
        await super().disconnect(code)

    def told(self, message: dict) -> None:
        if isinstance(message.get("logs"), dict):
            self.offsets = {name: bounded_int(message["logs"].get(name.split(".")[0]), low=0, high=INT64_MAX) or 0
                            for name in logs.LOG_NAMES}
        if "follow" in message:
            self.follow = bool(message["follow"])
        if self.ticker is None:
            self.ticker = asyncio.get_running_loop().create_task(self.tick())

    async def tick(self):
        """While following a task that runs, look for new output a few times a second."""
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            if self.follow and self.offsets is not None and self.task.state != TaskState.COMPLETED:
                self.changed()

    def render_update(self) -> list[str]:
        task = Task.objects.filter(pk=self.task.pk).first()
        if task is None:
            return [render_to_string("tasks/task_detail.html#gone", {"task": self.task})]
        task.job = self.task.job
        self.task = task
        fragments = []
        if task.last_modified != self.summary_sent:
            self.summary_sent = task.last_modified
            fragments.append(render_to_string("tasks/task_detail.html#task-summary",
                                              {"task": task, "job": task.job}))
        if self.follow and self.offsets is not None:
            fragments += self.new_output(task)
        return fragments

    def new_output(self, task: Task) -> list[str]:
        running = task.state != TaskState.COMPLETED
        fragments = []
        for name in logs.LOG_NAMES:
            chunk, skipped = logs.read_after(task, name, self.offsets[name], whole_lines=running)
            if chunk.start == chunk.end == self.offsets[name]:
                continue  # nothing new
            self.offsets[name] = chunk.end
            fragments.append(render_to_string("tasks/task_detail.html#log-append",
                                              {"log": chunk, "skipped": skipped}))
        return fragments
