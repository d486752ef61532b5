from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts.views import switch_account
from batchapi.schema import DocsView, SchemaView

urlpatterns = [
    path("batch/", include("batchsite.api_urls")),
    # The Batch API's OpenAPI schema (YAML; ?format=json for JSON) and its Swagger UI.
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", DocsView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/switch/", switch_account, name="switch-account"),
    path("pools/", include("pools.urls")),
    path("", include("jobs.urls")),
]
