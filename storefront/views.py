"""Catalogue, category and product pages of the demo shop."""

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from .models import Category, Product

PAGE_SIZE = 24


def _catalogue(request: HttpRequest, products, *, category: Category | None = None) -> HttpResponse:
    page = Paginator(products.select_related("category"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "storefront/catalogue.html", {"page": page, "category": category})


def catalogue(request: HttpRequest) -> HttpResponse:
    return _catalogue(request, Product.objects.all())


def category(request: HttpRequest, slug: str) -> HttpResponse:
    current = get_object_or_404(Category, slug=slug)
    return _catalogue(request, current.products.all(), category=current)


def product(request: HttpRequest, slug: str) -> HttpResponse:
    item = get_object_or_404(Product.objects.select_related("category"), slug=slug)
    related = Product.objects.filter(category=item.category).exclude(pk=item.pk)[:4]
    return render(request, "storefront/product.html", {"product": item, "related": related})
