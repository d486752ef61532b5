"""ASGI entry point: HTTP through Django, WebSockets through Channels (daphne serves both)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchsite.settings")
django_asgi_app = get_asgi_application()


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


leave_request_bodies_to_django()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from jobs.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
