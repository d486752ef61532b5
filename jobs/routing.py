"""WebSocket routes of the dashboard (the live pages come with the dashboard issue)."""

websocket_urlpatterns: list = []
