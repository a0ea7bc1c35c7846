from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "Promo code pools"
admin.site.site_title = "Promo code pools"
admin.site.index_title = "Campaigns and promo code pools"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
]
