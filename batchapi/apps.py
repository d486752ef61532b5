from django.apps import AppConfig


class BatchApiConfig(AppConfig):
    """The Azure Batch wire format: errors, dates, paging, $filter and $select."""

    name = "batchapi"
    label = "batchapi"
