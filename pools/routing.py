"""WebSocket routes of the pool pages (served by daphne next to the pages)."""

from django.urls import path

from .consumers import NodeConsumer, PoolConsumer, PoolListConsumer

websocket_urlpatterns = [
    path("ws/pools/", PoolListConsumer.as_asgi()),
    path("ws/pools/<str:pool_id>/", PoolConsumer.as_asgi()),
    path("ws/pools/<str:pool_id>/nodes/<str:node_id>/", NodeConsumer.as_asgi()),
]
