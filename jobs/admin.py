"""Jobs in the admin. State changes are actions that call the services; edits go
through Update Job, so nothing here writes a state or a count directly."""

from django import forms
from django.contrib import admin
from django.db.models import Sum

from batchapi.errors import BatchError
from batchapi.fields import validate_body
from pools.serializers import auto_pool_fields
from tasks.serializers import job_manager_fields

from .admin_actions import ServiceActions, service_action
from .models import Job
from .selectors import find_job
from .serializers import PoolInfoSerializer
from .services import lifecycle

EDITABLE = tuple(lifecycle.UPDATABLE)
LISTED_COUNTS = ("active", "running", "succeeded", "failed")


class JobForm(forms.ModelForm):
    def clean_state(self):
        data = super().clean()
        if self.instance.pk and not self.instance.is_open:
            raise forms.ValidationError(f"A job that is {self.instance.state} cannot be changed.")
        return data

    def clean(self):
        data = self.clean_state()
        batch_id, account = data.get("batch_id"), data.get("account")
        if self.instance.pk is None and batch_id and account and find_job(account, batch_id, only=("pk",)):
            self.add_error("batch_id", "This account has a job with this id already (ids ignore case).")
        if data.get("pool_info"):  # as the API checks it: a pool id, or a pool to make for the job
            try:
                data["pool_info"] = dict(validate_body(PoolInfoSerializer, data["pool_info"], name="poolInfo"))
            except BatchError as error:
                self.add_error("pool_info", f"{error.message} {error.values or ''}".strip())
        return data


terminate = service_action(lifecycle.terminate_job, name="terminate", description="Terminate selected jobs",
                           verb="Terminated", keyword="job")
delete = service_action(lifecycle.delete_job, name="delete", description="Delete selected jobs (with their tasks)",
                        verb="Deleting", keyword="job")


@admin.register(Job)
class JobAdmin(ServiceActions, admin.ModelAdmin):
    form = JobForm
    list_display = ("batch_id", "account", "display_name", "state", "priority", "task_counts", "creation_time")
    list_filter = ("account", "state", "on_all_tasks_complete")
    search_fields = ("batch_id", "display_name")
    actions = (terminate, delete)

    def get_queryset(self, request):
        # The counts of every listed job in the list's own query: a sum over each job's few shard rows.
        sums = {f"count_{name}": Sum(f"count_shards__{name}") for name in LISTED_COUNTS}
        return super().get_queryset(request).annotate(**sums)

    @admin.display(description="active / running / succeeded / failed")
    def task_counts(self, job):
        return " / ".join(str(getattr(job, f"count_{name}") or 0) for name in LISTED_COUNTS)

    def get_readonly_fields(self, request, obj=None):
        fixed = ["state", "state_transition_time", "previous_state", "previous_state_transition_time",
                 "start_time", "end_time", "terminate_reason", "creation_time", "last_modified"]
        if obj is None:
            return fixed
        return [f.name for f in Job._meta.fields if f.name not in EDITABLE and f.name != "id"]

    def get_exclude(self, request, obj=None):
        return ("key",)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # Django's bulk delete would bypass the services
        return actions

    def save_model(self, request, obj, form, change):
        if change:
            lifecycle.update_job(job=obj, changes={k: form.cleaned_data[k] for k in EDITABLE if k in form.cleaned_data})
            return
        spec = dict(form.cleaned_data)
        obj.pk = lifecycle.create_job(spec=spec, job_manager=job_manager_fields(spec.get("job_manager_task")),
                                      auto_pool=auto_pool_fields(spec.get("pool_info"))).pk

    def delete_model(self, request, obj):
        lifecycle.delete_job(job=obj)

    def delete_queryset(self, request, queryset):
        for job in queryset:
            lifecycle.delete_job(job=job)
