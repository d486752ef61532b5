"""The Content-Security-Policy header, with the page's own WebSocket origin spelled out.

CSP Level 3 lets 'self' match ws:/wss: of the page's own host, and current browsers
do; older ones (Safari before 15.4, for one) do not, and would block the dashboard's
live socket. So connect-src also names ws:// and wss:// of the host the request came
to: the same origin as 'self', never a wildcard.
"""

from csp.middleware import CSPMiddleware, PolicyParts
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def get_policy_parts(self, request: HttpRequest, response: HttpResponseBase,
                         report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        try:
            host = request.get_host()
        except DisallowedHost:  # the 400 for that very host: it gets the plain policy
            return parts
        # An IPv6 literal is no valid CSP host source (browsers ignore it with a console
        # error); 'self' covers it where browsers match ws: to 'self' at all.
        if not host.startswith("["):
            parts.update = {**(parts.update or {}), "connect-src": [f"ws://{host}", f"wss://{host}"]}
        return parts
