"""URLs of the demo shop: the catalogue, the two apps, the admin, and media in the demo."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from . import api, errors, views

handler500 = errors.server_error

shop_patterns = [
    path("", views.catalogue, name="catalogue"),
    path("c/<slug:slug>/", views.category, name="category"),
    path("p/<slug:slug>/", views.product, name="product"),
]

urlpatterns = [
    path("", include((shop_patterns, "storefront"))),
    path("admin/", admin.site.urls),
    path("", include("stylerec.urls")),  # both apps: API, schema, Swagger UI, shopper views
    re_path(r"^api/(?P<path>.*)$", api.api_not_found),
]

if settings.SERVE_MEDIA:
    urlpatterns += [
        re_path(
            rf"^{settings.MEDIA_URL.lstrip('/')}(?P<path>.*)$",
            serve,
            {"document_root": settings.MEDIA_ROOT},
        )
    ]
