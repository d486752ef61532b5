"""A task file as an HTTP response body: bounded chunks, read off the event loop, exactly as long as promised.

Under ASGI, Django drains a synchronous iterator whole before it sends a byte
(2 GB of file, 2 GB of memory, and nothing sent for seconds), so there the body
is an asynchronous iterator whose reads run on a small thread pool: the loop
serves other requests meanwhile, and one chunk at a time is in memory. Under
WSGI (and Django's test client) it is a plain iterator.

The length is the size fstat gave for the descriptor that is read, and the body
is always exactly that long: a file that grows meanwhile is cut at that length,
one that shrinks is padded with zeros. Ending early is not an option: daphne
keeps the connection open, and the client waits for the missing bytes forever.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse

from .files import TaskFile

CHUNK = 256 * 1024
# Reads of task files, apart from asgiref's pool (the ORM's) and the loop's default.
_readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="task-file-read")


class _Body:
    """Bytes [start, end) of an open file; owns the file and closes it when done or closed."""

    def __init__(self, file: TaskFile, start: int, end: int, chunk: int = CHUNK):
        self.file, self.start, self.end, self.chunk = file, start, end, chunk

    def _next(self, offset: int) -> bytes:
        want = min(self.chunk, self.end - offset)
        data = self.file.read(offset, want) if self.file.fd >= 0 else b""
        return data + bytes(want - len(data))  # zeros past a shrunk file's end

    def close(self) -> None:
        self.file.close()


class SyncBody(_Body):
    def __iter__(self):
        try:
            offset = self.start
            while offset < self.end:
                data = self._next(offset)
                offset += len(data)
                yield data
        finally:
            self.close()


class AsyncBody(_Body):
    async def __aiter__(self):
        pending = None
        try:
            offset = self.start
            while offset < self.end:
                pending = _readers.submit(self._next, offset)
                data = await asyncio.wrap_future(pending)
                pending = None
                offset += len(data)
                yield data
        finally:
            if pending is not None and not pending.done():
                # The client went away mid-read: close once the thread is done with the descriptor.
                pending.add_done_callback(lambda _: self.close())
            else:
                self.close()


def under_asgi(request) -> bool:
    """Whether the request came through ASGI (where a streamed body must be asynchronous)."""
    return isinstance(getattr(request, "_request", request), ASGIRequest)  # DRF's Request wraps Django's


def file_response(request, file: TaskFile, start: int, end: int) -> StreamingHttpResponse:
    """Stream [start, end) of `file` (which the response then owns) with its Content-Length."""
    body = (AsyncBody if under_asgi(request) else SyncBody)(file, start, end)
    response = StreamingHttpResponse(body, content_type="application/octet-stream")
    response["Content-Length"] = str(end - start)
    return response
