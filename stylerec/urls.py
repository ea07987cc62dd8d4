"""Everything the two apps serve, for one include() in the shop's urls.py: the API of both
under api/v1/, its OpenAPI schema and Swagger UI, and the shopper-facing views."""

from django.urls import include, path

from . import views
from .api.schema import SchemaView, SwaggerView

shopper_patterns = [
    path("originals/", views.originals, name="originals"),
]

urlpatterns = [
    path("api/v1/", include("stylerec.api.urls")),
    path("api/v1/", include("styletransfer.api.urls")),
    path("api/schema/", SchemaView.as_view(), name="stylerec-schema"),
    path("api/docs/", SwaggerView.as_view(), name="stylerec-docs"),
    path("stylerec/", include((shopper_patterns, "stylerec"))),
]
