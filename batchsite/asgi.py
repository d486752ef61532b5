"""ASGI entry point: HTTP through Django, WebSockets through Channels (daphne serves both)."""

import os

from django.core.asgi import get_asgi_application

os.umask(0o077)  # what Batchsite writes is its user's alone (as in manage.py)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchsite.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from jobs.routing import websocket_urlpatterns as job_sockets  # noqa: E402
from pools.routing import websocket_urlpatterns as pool_sockets  # noqa: E402

from .daphne_fixes import flow_controlled, leave_request_bodies_to_django  # noqa: E402

leave_request_bodies_to_django()

application = ProtocolTypeRouter({
    "http": flow_controlled(django_asgi_app),
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(job_sockets + pool_sockets))),
})
