from django.urls import path

from tasks import views as task_views

from . import views

JOB = "jobs/<str:job_id>/"

urlpatterns = [
    path("", views.job_list, name="job-list"),
    path(JOB, views.job_detail, name="job-detail"),
    path(JOB + "durations", views.job_durations, name="job-durations"),
    path(JOB + "tasks.csv", views.task_csv, name="job-tasks-csv"),
    # What an operator does to the job from its page.
    path(JOB + "actions/terminate", views.terminate_job, name="job-terminate"),
    path(JOB + "actions/delete", views.delete_job, name="job-delete"),
    path(JOB + "actions/disable", views.disable_job, name="job-disable"),
    path(JOB + "actions/enable", views.enable_job, name="job-enable"),
    path(JOB + "actions/rerun-failed", views.rerun_failed_tasks, name="job-rerun-failed"),
    # ... and to the tasks ticked in its table (or the one on a task's page).
    path(JOB + "actions/tasks", views.task_action, name="job-task-action"),
    path(JOB + "actions/tasks/rerun", views.rerun_tasks, name="job-tasks-rerun"),
    path(JOB + "actions/tasks/terminate", views.terminate_tasks, name="job-tasks-terminate"),
    path(JOB + "actions/tasks/delete", views.delete_tasks, name="job-tasks-delete"),
    path(JOB + "tasks/<str:task_id>/", task_views.task_detail, name="task-detail"),
    path(JOB + "tasks/<str:task_id>/logs/<str:name>", task_views.log_earlier, name="task-log-earlier"),
    path(JOB + "tasks/<str:task_id>/files/<path:path>", task_views.task_file, name="task-file"),
]
