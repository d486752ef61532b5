"""Serializer fields and validation shared by the job and task APIs."""

from django.core.validators import RegexValidator
from rest_framework import serializers

from .errors import BatchError, invalid_property, missing_property
from .ids import batch_id_validator
from .input import INT32_MAX, INT32_MIN
from .wire import parse_wire_duration


class BatchIdField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=64, validators=[batch_id_validator], **kwargs)


class WireDurationField(serializers.Field):
    """An ISO 8601 duration ("PT1H"); Batch's maximum (or near it) means no limit (None)."""

    def to_internal_value(self, data):
        try:
            return parse_wire_duration(data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class EnumField(serializers.ChoiceField):
    """A Batch enum: accepted in any case, stored lower-cased as the wire sends it back."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = data.lower()
        return super().to_internal_value(data)


class IntField(serializers.IntegerField):
    """An integer, also when sent as a string ("10", as the CLI does); never a bool or a float.

    Bounded to 32 bits unless told narrower: Batch's integer properties are int32 and
    so are the IntegerField columns they are stored in (64 bits on SQLite, 32 on
    PostgreSQL: bounded here, both refuse the same values with a 400).
    """

    def __init__(self, *, min_value: int = INT32_MIN, max_value: int = INT32_MAX, **kwargs):
        super().__init__(min_value=max(min_value, INT32_MIN), max_value=min(max_value, INT32_MAX), **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or isinstance(data, float) and not data.is_integer():
            self.fail("invalid")
        if isinstance(data, str) and not (data.isascii() and data.strip().lstrip("+-").isdigit()):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    TRUE_VALUES = {True, "true", "True", "TRUE"}
    FALSE_VALUES = {False, "false", "False", "FALSE"}


class JSONObjectField(serializers.JSONField):
    """A Batch sub-object kept as sent (its semantics come with later features)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("expected a JSON object")
        return data


class JSONListField(serializers.JSONField):
    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise serializers.ValidationError("expected a JSON array")
        return data


class NameValueSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=1024)
    value = serializers.CharField(allow_blank=True, required=False, default="")


class EnvironmentSettingSerializer(NameValueSerializer):
    # What execve can carry: a name holds no "=" (nor NUL, refused for every string).
    name = serializers.CharField(max_length=1024, validators=[RegexValidator(r"^[^=]+\Z",
                                                                             "a variable's name cannot hold '='")])


class MetadataItemSerializer(NameValueSerializer):
    value = serializers.CharField(allow_blank=True)


class AutoUserSerializer(serializers.Serializer):
    scope = EnumField(choices=["task", "pool"], required=False)
    elevationLevel = EnumField(choices=["nonadmin", "admin"], required=False)


class UserIdentitySerializer(serializers.Serializer):
    """userIdentity: who a task runs as. The worker decides whether it can (nodes.sandbox);
    here only the shape: a user name or an auto-user, not both (the Batch docs' rule)."""

    userName = serializers.CharField(max_length=256, required=False)
    autoUser = AutoUserSerializer(required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict) and (unknown := sorted(set(data) - set(self.fields))):
            raise serializers.ValidationError(f"{unknown[0]} is not a property of userIdentity")
        return super().to_internal_value(data)

    def validate(self, attrs):
        if "userName" in attrs and "autoUser" in attrs:
            raise serializers.ValidationError("userName and autoUser are mutually exclusive: give one, not both")
        return attrs


def validate_body(serializer_class, data, *, partial: bool = False, name: str = "") -> dict:
    """Validate a request body; a Batch error naming the first bad property otherwise.

    Unknown properties are refused too: a misspelt `maxTaskRetryCount` must not be
    silently ignored.
    """
    if not isinstance(data, dict):
        raise BatchError("InvalidRequestBody", "The specified Request Body is not syntactically valid.", 400,
                         {"Reason": "the body must be a JSON object"})
    serializer = serializer_class(data=data, partial=partial)
    prefix = f"{name}." if name else ""
    unknown = [key for key in data if key not in serializer.fields and key != "odata.metadata"]
    if unknown:
        raise BatchError("InvalidRequestBody", "The specified Request Body is not syntactically valid.", 400,
                         {"PropertyName": prefix + unknown[0],
                          "Reason": f"{unknown[0]} is not a property of this resource"})
    if not serializer.is_valid():
        raise error_from(serializer.errors, data, parent=name)
    return serializer.validated_data


def error_from(errors, data, parent: str = "") -> BatchError:
    """The first of DRF's errors as a Batch error: MissingRequiredProperty or InvalidPropertyValue."""
    name, detail = next(iter(errors.items()))
    if name == "non_field_errors":  # about the object itself (not an object, not a list)
        name, sub = parent or "body", data
    else:
        sub = data.get(name) if isinstance(data, dict) else None
    if isinstance(detail, dict):  # a nested object: name its own bad property
        return error_from(detail, sub, name)
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):  # a list of objects
        index = next(i for i, d in enumerate(detail) if d)
        return error_from(detail[index], sub[index] if isinstance(sub, list) else None, name)
    first = detail[0] if isinstance(detail, list) else detail
    if getattr(first, "code", "") == "required":
        return missing_property(name)
    return invalid_property(name, str(first), sub if isinstance(sub, str | int | float) else None)
