import json

from rest_framework.renderers import BaseRenderer


def render_json(data) -> bytes:
    """Compact UTF-8 JSON. A lone surrogate, which UTF-8 cannot carry, goes out as its \\uXXXX escape.

    Such strings are refused on the way in (batchapi.input), but rows stored before
    that (on SQLite) must still read: the fallback escapes every non-ASCII character,
    which is the same JSON to any client.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode()


class BatchJSONRenderer(BaseRenderer):
    """JSON as the Batch service sends it: compact, UTF-8, odata minimal metadata."""

    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return render_json(data)
