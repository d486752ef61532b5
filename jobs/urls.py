from django.urls import path

from tasks import views as task_views

from . import views

urlpatterns = [
    path("", views.job_list, name="job-list"),
    path("jobs/<str:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<str:job_id>/durations", views.job_durations, name="job-durations"),
    path("jobs/<str:job_id>/tasks.csv", views.task_csv, name="job-tasks-csv"),
    path("jobs/<str:job_id>/actions/tasks", views.task_action, name="job-task-action"),
    path("jobs/<str:job_id>/actions/<str:action>", views.job_action, name="job-action"),
    path("jobs/<str:job_id>/tasks/<str:task_id>/", task_views.task_detail, name="task-detail"),
    path("jobs/<str:job_id>/tasks/<str:task_id>/logs/<str:name>", task_views.log_earlier, name="task-log-earlier"),
    path("jobs/<str:job_id>/tasks/<str:task_id>/files/<path:path>", task_views.task_file, name="task-file"),
]
