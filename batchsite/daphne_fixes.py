"""Two things daphne does that Batchsite undoes, both tied to daphne's internals.

Each is covered by a test that would fail if a daphne release changed what it
relies on (tests/test_downloads.py, tests/test_api_found_by_fuzzing.py). Under
another ASGI server both do nothing.
"""

import asyncio
import functools


def leave_request_bodies_to_django() -> None:
    """Under daphne, Twisted parses a multipart/form-data POST body itself (into request.args, which
    daphne never reads) and answers one it cannot parse with a bare 400 before Django sees it: the
    Batch API could not refuse it in its own shape (415), and every upload was parsed twice."""
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:  # another ASGI server
        return
    init = WebRequest.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, parsePOSTFormSubmission=False, **kwargs)

    WebRequest.__init__ = __init__



class _Writable:
    """Twisted's push-producer interface for one daphne request: the transport says when its buffer is full."""

    def __init__(self):
        self.event = asyncio.Event()
        self.event.set()

    def pauseProducing(self):
        self.event.clear()

    def resumeProducing(self):
        self.event.set()

    def stopProducing(self):  # the connection is gone: let the app run to its end
        self.event.set()


def flow_controlled(app):
    """Make each body message wait while daphne's socket buffer is full.

    daphne's `send` writes into Twisted's transport at once, however slowly the
    client reads: a 2 GB download to a slow client ends up 2 GB in daphne's memory.
    Twisted says when that buffer fills and drains (IPushProducer), daphne just
    never asks; this registers a producer on daphne's request (the protocol its
    `send` is bound to) and holds each body message while the buffer is full, so
    a streaming response reads its next chunk only when the last one left.
    Under another server (its `send` not daphne's) the app runs as it is.
    """

    async def application(scope, receive, send):
        request = send.args[0] if isinstance(send, functools.partial) and send.args else None
        if scope["type"] != "http" or not hasattr(request, "registerProducer"):
            return await app(scope, receive, send)
        writable = _Writable()
        registered = False

        def unregister():
            nonlocal registered
            if registered and request.producer is writable and getattr(request, "channel", None) is not None:
                request.unregisterProducer()
            registered = False

        async def flowing_send(message):
            nonlocal registered
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    if not registered and getattr(request, "channel", None) is not None and request.producer is None:
                        request.registerProducer(writable, True)
                        registered = True
                    await writable.event.wait()
                else:
                    unregister()  # before daphne finishes the request, which must find no producer
            await send(message)

        try:
            return await app(scope, receive, flowing_send)
        finally:
            unregister()

    return application

