from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django.views import defaults
from django.views.generic import RedirectView

from pools.api_base import json_bad_request, json_forbidden, json_not_found, json_server_error

admin.site.site_header = _("Promo code pools")
admin.site.site_title = _("Promo code pools")
admin.site.index_title = _("Campaigns and promo code pools")

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # The admin's language chooser posts here (Django's set_language view).
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/", include("pools.api")),
]


# API callers get JSON, never an HTML page.


def handler400(request, exception):
    if request.path.startswith("/api/"):
        return json_bad_request(request, exception)
    return defaults.bad_request(request, exception)


def handler403(request, exception):
    if request.path.startswith("/api/"):
        return json_forbidden(request, exception)
    return defaults.permission_denied(request, exception)


def handler404(request, exception):
    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return json_server_error(request)
    return defaults.server_error(request)
