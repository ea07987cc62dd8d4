"""URLs of the stylerec API, mounted by the shop under /api/v1/."""

from django.urls import path

from . import views

app_name = "stylerec-api"

urlpatterns = [
    path("events/", views.EventsView.as_view(), name="events"),
    path("shoppers/anonymous/", views.AnonymousShopperView.as_view(), name="shopper-anonymous"),
    path("shoppers/sign-in/", views.SignInView.as_view(), name="sign-in"),
    path("shoppers/sign-out/", views.SignOutView.as_view(), name="sign-out"),
    path("products/", views.ProductListView.as_view(), name="products"),
    path("products/<str:pk>/", views.ProductDetailView.as_view(), name="product"),
    path("me/", views.MeView.as_view(), name="me"),
    path("me/preferences/", views.PreferencesView.as_view(), name="preferences"),
    path("me/export/", views.ExportView.as_view(), name="export"),
    path("staff/loop-settings/", views.LoopSettingsView.as_view(), name="staff-loop-settings"),
]
