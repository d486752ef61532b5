import json

from rest_framework.renderers import BaseRenderer


class BatchJSONRenderer(BaseRenderer):
    """JSON as the Batch service sends it: compact, UTF-8, odata minimal metadata."""

    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
