"""URLs of the styletransfer API, mounted by the shop under /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

app_name = "styletransfer-api"

router = SimpleRouter()
router.register("staff/styles", views.StaffStyleViewSet, basename="staff-style")
router.register("staff/renditions", views.RenditionViewSet, basename="staff-rendition")

urlpatterns = [
    path("styles/", views.StyleListView.as_view(), name="styles"),
    path("staff/rendering/", views.RenderingHealthView.as_view(), name="staff-rendering"),
    *router.urls,
]
