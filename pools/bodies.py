"""The bodies of the pool and node actions: Resize, Remove Nodes, Disable Scheduling, Reboot."""

from rest_framework import serializers

from batchapi.fields import EnumField, IntField, WireDurationField

from .serializers import MAX_NODES, MIN_RESIZE_TIMEOUT
from .services.node_actions import MAX_NODES_REMOVED, OPTIONS

DEALLOCATION = list(OPTIONS)



class ResizeSerializer(serializers.Serializer):
    resizeTimeout = WireDurationField(required=False)
    nodeDeallocationOption = EnumField(DEALLOCATION, required=False)

    def validate_resizeTimeout(self, value):
        if value is None or value < MIN_RESIZE_TIMEOUT:
            raise serializers.ValidationError("must be at least 5 minutes (PT5M) and have a limit")
        return value


class PoolResizeSerializer(ResizeSerializer):
    targetDedicatedNodes = IntField(required=False, min_value=0, max_value=MAX_NODES)
    targetLowPriorityNodes = IntField(required=False, min_value=0, max_value=MAX_NODES)


class NodeRemoveSerializer(ResizeSerializer):
    nodeList = serializers.ListField(child=serializers.CharField(max_length=128), min_length=1,
                                     max_length=MAX_NODES_REMOVED)


class DisableSchedulingOptionField(EnumField):
    """nodeDisableSchedulingOption. azure-cli 2.91 (`az batch node scheduling disable
    --node-disable-scheduling-option X`) sends it wrapped in an object of its own name,
    `{"nodeDisableSchedulingOption": {"nodeDisableSchedulingOption": "X"}}`: taken as the X it wraps."""

    def to_internal_value(self, data):
        if isinstance(data, dict) and list(data) == ["nodeDisableSchedulingOption"]:
            data = data["nodeDisableSchedulingOption"]
        return super().to_internal_value(data)


class NodeDisableSchedulingSerializer(serializers.Serializer):
    nodeDisableSchedulingOption = DisableSchedulingOptionField(["requeue", "terminate", "taskcompletion"],
                                                               required=False)


class NodeRebootSerializer(serializers.Serializer):
    # The deallocation options, as Batch has them (one enum in the schema: settings.SPECTACULAR_SETTINGS).
    nodeRebootOption = EnumField(DEALLOCATION, required=False)
