"""The API's JSON bodies, parsed as Batchsite takes them (batchapi.input)."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding

from .errors import BatchError, invalid_property
from .input import UnusableJSON, loads


class BatchJSONParser(JSONParser):
    """JSON with no NUL, no lone surrogate, no NaN and at most 64 levels of nesting.

    Refused here, such a body never reaches a serializer, a kept-as-sent object
    (containerSettings, metadata values, ...) or the database: a string with a NUL
    names its property in InvalidPropertyValue; the rest is InvalidRequestBody.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        try:
            return loads(stream.read().decode(encoding))
        except UnusableJSON as exc:
            if exc.in_value and exc.where:
                raise invalid_property(exc.where, exc.reason) from None
            values = {"PropertyName": exc.where} if exc.where else {}
            raise BatchError("InvalidRequestBody", "The specified Request Body is not syntactically valid.", 400,
                             {**values, "Reason": exc.reason}) from None
        except ValueError as exc:  # not JSON, or not in its encoding
            raise ParseError(f"JSON parse error - {exc}") from None
