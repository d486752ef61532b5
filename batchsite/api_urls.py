"""The Batch REST paths below the account endpoint (/batch)."""

from django.urls import path, re_path

from batchapi.views import UnknownResourceView
from jobs import api as jobs_api
from pools import api as pools_api
from pools import node_api, node_file_api
from tasks import api as tasks_api

urlpatterns = [
    path("pools", pools_api.PoolListView.as_view(), name="batch-pools"),
    path("pools/<str:pool_id>", pools_api.PoolDetailView.as_view(), name="batch-pool"),
    path("pools/<str:pool_id>/updateproperties", pools_api.PoolUpdatePropertiesView.as_view()),
    path("pools/<str:pool_id>/resize", pools_api.PoolResizeView.as_view()),
    path("pools/<str:pool_id>/stopresize", pools_api.PoolStopResizeView.as_view()),
    path("pools/<str:pool_id>/removenodes", pools_api.PoolRemoveNodesView.as_view()),
    path("pools/<str:pool_id>/nodes", node_api.NodeListView.as_view(), name="batch-nodes"),
    path("pools/<str:pool_id>/nodes/<str:node_id>", node_api.NodeDetailView.as_view(), name="batch-node"),
    path("pools/<str:pool_id>/nodes/<str:node_id>/disablescheduling", node_api.NodeDisableSchedulingView.as_view()),
    path("pools/<str:pool_id>/nodes/<str:node_id>/enablescheduling", node_api.NodeEnableSchedulingView.as_view()),
    path("pools/<str:pool_id>/nodes/<str:node_id>/reboot", node_api.NodeRebootView.as_view()),
    path("pools/<str:pool_id>/nodes/<str:node_id>/files", node_file_api.NodeFileListView.as_view()),
    path("pools/<str:pool_id>/nodes/<str:node_id>/files/<path:file_path>", node_file_api.NodeFileView.as_view()),
    path("nodecounts", pools_api.NodeCountsView.as_view(), name="batch-node-counts"),
    path("jobs", jobs_api.JobListView.as_view(), name="batch-jobs"),
    path("jobs/<str:job_id>", jobs_api.JobDetailView.as_view(), name="batch-job"),
    path("jobs/<str:job_id>/terminate", jobs_api.JobTerminateView.as_view()),
    path("jobs/<str:job_id>/disable", jobs_api.JobDisableView.as_view()),
    path("jobs/<str:job_id>/enable", jobs_api.JobEnableView.as_view()),
    path("jobs/<str:job_id>/taskcounts", jobs_api.JobTaskCountsView.as_view()),
    path("jobs/<str:job_id>/jobpreparationandreleasetaskstatus", jobs_api.JobPreparationAndReleaseStatusView.as_view()),
    path("jobs/<str:job_id>/tasks", tasks_api.TaskListView.as_view(), name="batch-tasks"),
    path("jobs/<str:job_id>/addtaskcollection", tasks_api.AddTaskCollectionView.as_view()),
    path("jobs/<str:job_id>/tasks/<str:task_id>", tasks_api.TaskDetailView.as_view(), name="batch-task"),
    path("jobs/<str:job_id>/tasks/<str:task_id>/terminate", tasks_api.TaskTerminateView.as_view()),
    path("jobs/<str:job_id>/tasks/<str:task_id>/reactivate", tasks_api.TaskReactivateView.as_view()),
    path("jobs/<str:job_id>/tasks/<str:task_id>/files", tasks_api.TaskFileListView.as_view()),
    path("jobs/<str:job_id>/tasks/<str:task_id>/files/<path:file_path>", tasks_api.TaskFileView.as_view()),
]


# Anything else below /batch answers in Batch's error shape (after authentication).
urlpatterns.append(re_path(r"^[\s\S]*$", UnknownResourceView.as_view()))  # a newline too
