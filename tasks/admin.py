"""Tasks in the admin. State is read-only here: every change goes through a service,
so the count rows stay exact whatever an operator clicks."""

from django import forms
from django.contrib import admin

from batchapi.errors import BatchError
from jobs.admin_actions import ServiceActions, service_action

from .models import NodeTask, Task
from .services import actions, adding

EXECUTION_FIELDS = ("state", "state_transition_time", "previous_state", "start_time", "end_time", "exit_code",
                    "result", "failure_info", "retry_count", "last_retry_time", "requeue_count",
                    "last_requeue_time", "node_id", "attempt", "creation_time", "last_modified")
# Bookkeeping the services keep (dependency resolution, the task's kind): never edited by hand.
INTERNAL_FIELDS = ("key", "kind", "dependency_group", "waiting", "int_id", "satisfies_dependents",
                   "files_expire_at", "files_removed_at", "stats")
# Fields an operator may change on an existing task: Batch's Update Task (constraints only).
CONSTRAINT_FIELDS = ("max_wall_clock_time", "max_task_retry_count", "retention_time")


terminate = service_action(actions.terminate_task, name="terminate", description="Terminate selected tasks",
                           verb="Terminated", keyword="task")
reactivate = service_action(actions.reactivate_task, name="reactivate",
                            description="Reactivate (rerun) selected failed tasks", verb="Reactivated", keyword="task")
delete = service_action(actions.delete_task, name="delete", description="Delete selected tasks",
                        verb="Deleted", keyword="task")


class TaskForm(forms.ModelForm):
    """A new task is added while the form is validated, through the service Add Task uses.

    The service makes Add Task's checks (id taken, job open, dependencies, exit
    conditions) and refuses with a BatchError: adding here, not in save_model,
    shows that refusal on the form rather than as a server error. The form is
    valid only once the task is added, and then the admin saves (this admin has
    no inlines that could still refuse); its view runs in one transaction.
    """

    # Where on the form a refusal is shown (elsewhere: above the fields), and in the
    # admin's words where they say more than the API's.
    FIELD_OF = {"TaskExists": "batch_id", "TaskIdSameAsJobPreparationTask": "batch_id",
                "TaskIdSameAsJobReleaseTask": "batch_id", "JobCompleted": "job", "JobBeingDeleted": "job"}
    WORDING = {"TaskExists": "The job already has a task with this id (ids ignore case)."}

    added: Task | None = None

    def full_clean(self):
        super().full_clean()
        if self.is_bound and not self._errors and self.instance.pk is None:
            spec = {name: value for name, value in self.cleaned_data.items() if name != "job"}
            try:
                self.added = adding.add_task(job=self.cleaned_data["job"], spec=spec)
            except BatchError as error:
                self.add_error(self.FIELD_OF.get(error.code), self.WORDING.get(error.code, error.message))


@admin.register(Task)
class TaskAdmin(ServiceActions, admin.ModelAdmin):
    list_display = ("batch_id", "job", "state", "result", "exit_code", "retry_count", "node_id", "start_time",
                    "end_time")
    list_filter = ("state", "result")
    search_fields = ("batch_id", "job__batch_id", "command_line")
    list_select_related = ("job",)
    raw_id_fields = ("job",)
    actions = (terminate, reactivate, delete)
    form = TaskForm
    show_full_result_count = False  # no COUNT(*) over a million rows on every page

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("job")  # actions need each task's job

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return EXECUTION_FIELDS
        editable = set(CONSTRAINT_FIELDS)
        return [f.name for f in Task._meta.fields
                if f.name not in editable and f.name != "id" and f.name not in INTERNAL_FIELDS]

    def get_exclude(self, request, obj=None):
        return INTERNAL_FIELDS

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # Django's own bulk delete would bypass the counts
        return actions

    def save_model(self, request, obj, form, change):
        if change:
            actions.update_task_constraints(
                task=obj, **{name: form.cleaned_data.get(name) for name in CONSTRAINT_FIELDS})
            return
        obj.pk = form.added.pk  # added by the form, once valid

    def delete_model(self, request, obj):
        actions.delete_task(task=obj)

    def delete_queryset(self, request, queryset):
        for task in queryset:
            actions.delete_task(task=task)


@admin.register(NodeTask)
class NodeTaskAdmin(admin.ModelAdmin):
    """Each worker's runs of a job's preparation and release tasks: the workers write them."""

    list_display = ("job", "node_id", "kind", "state", "result", "exit_code", "retry_count", "start_time", "end_time")
    list_filter = ("kind", "state", "result")
    search_fields = ("job__batch_id", "node_id")
    list_select_related = ("job",)
    readonly_fields = [f.name for f in NodeTask._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
