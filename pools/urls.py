"""The pool pages of the dashboard (below /pools/)."""

from django.urls import path

from . import views

POOL = "<str:pool_id>/"

urlpatterns = [
    path("", views.pool_list, name="pool-list"),
    path(POOL, views.pool_detail, name="pool-detail"),
    path(POOL + "nodes/<str:node_id>/", views.node_detail, name="node-detail"),
    # What an operator does to the pool from its page (or the Pools page)...
    path(POOL + "actions/resize", views.resize_pool, name="pool-resize"),
    path(POOL + "actions/stop-resize", views.stop_resize, name="pool-stop-resize"),
    # ... and to the nodes ticked in its node table (or the one of a node's page).
    path(POOL + "actions/nodes", views.node_action, name="pool-node-action"),
]
