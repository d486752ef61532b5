"""WebSocket routes of the live dashboard (served by daphne next to the pages)."""

from django.urls import path

from jobs.consumers import JobConsumer, JobListConsumer
from tasks.consumers import TaskConsumer

websocket_urlpatterns = [
    path("ws/jobs/", JobListConsumer.as_asgi()),
    path("ws/jobs/<str:job_id>/", JobConsumer.as_asgi()),
    path("ws/jobs/<str:job_id>/tasks/<str:task_id>/", TaskConsumer.as_asgi()),
]
