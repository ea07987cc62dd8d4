"""Template context shared by every shop page."""

from django.http import HttpRequest

from .models import Category


def shop(request: HttpRequest) -> dict:
    return {"shop_name": "StyleRec Demo Shop", "nav_categories": Category.objects.all()}
