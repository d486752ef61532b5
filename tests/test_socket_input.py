"""The live pages' sockets take what any client may type into them: a message that is not
what the page sends is ignored, and the socket goes on serving the page (issue 10).

Real consumers over Channels' test transport, on the test database (SQLite or PostgreSQL).
"""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from jobs.routing import websocket_urlpatterns
from tasks.files import task_dir
from tasks.models import Task

from .helpers import add, make_job

pytestmark = pytest.mark.django_db(transaction=True)  # the consumers read in their own threads

MALFORMED = [
    "not json",
    "[1, 2]",
    '"a string"',
    "null",
    "42",
    "{",
    "[" * 100_000 + "]" * 100_000,
    '{"a": "\\u0000", "visible": [1]}',
    '{"visible": "\\ud800"}',
    '{"visible": "1"}',
    '{"visible": ["²", "١٢"]}',
    '{"visible": [' + "9" * 30 + "]}",
    '{"visible": [1e400]}',
    '{"visible": [-1, 1.5, true, null, {"pk": 1}, [1]]}',
    '{"logs": {"stdout": "abc", "stderr": [1]}}',
    '{"logs": {"stdout": -5, "stderr": 1e300}}',
    '{"logs": {"stdout": ' + "9" * 40 + '}}',
    '{"logs": [], "follow": {"x": 1}}',
    '{"logs": {"stdout": NaN}}',
]


def socket(path: str, user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    return communicator


async def send_all(communicator, texts):
    for text in texts:
        await communicator.send_to(text_data=text)
    await communicator.send_to(bytes_data=b"\x00\xff")


def test_the_job_page_socket_ignores_malformed_messages_and_stays_usable(owner):
    job = make_job("j")
    [task] = add(job, "t1")

    async def scenario():
        communicator = socket("/ws/jobs/j/", owner)
        connected, _ = await communicator.connect()
        assert connected
        assert 'id="job-summary"' in await communicator.receive_from(timeout=10)  # the state on connect
        await send_all(communicator, MALFORMED)
        await communicator.send_to(text_data=json.dumps({"visible": [task.pk]}))
        row = await communicator.receive_from(timeout=10)  # raises what the consumer raised, if it did
        assert f'id="task-{task.pk}"' in row
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_the_task_page_socket_ignores_malformed_messages_and_still_follows_output(owner):
    job = make_job("j")
    [task] = add(job, "t1")
    task = Task.objects.select_related("job__account").get(pk=task.pk)
    task_dir(task).mkdir(parents=True)
    (task_dir(task) / "stdout.txt").write_text("hello from the task\n")

    async def scenario():
        communicator = socket("/ws/jobs/j/tasks/t1/", owner)
        connected, _ = await communicator.connect()
        assert connected
        assert "task-summary" in await communicator.receive_from(timeout=10)
        await send_all(communicator, MALFORMED)
        await communicator.send_to(text_data=json.dumps({"logs": {"stdout": 0, "stderr": 0}, "follow": True}))
        output = await communicator.receive_from(timeout=10)
        assert "hello from the task" in output
        await communicator.disconnect()

    async_to_sync(scenario)()


@pytest.mark.parametrize("path", ["/ws/jobs/a%00b/", "/ws/jobs/j/tasks/t%00/", "/ws/jobs/?q=%00",
                                  "/ws/jobs/?state=%ED%A0%80&q=%00"])
def test_a_socket_whose_path_or_query_holds_a_nul_is_refused(owner, path):
    make_job("j")

    async def scenario():
        communicator = socket(path, owner)
        connected, _ = await communicator.connect()
        assert not connected
        await communicator.disconnect()

    async_to_sync(scenario)()
