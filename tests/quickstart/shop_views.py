"""The throwaway shop's catalogue page: its template holds the README's template snippet."""

from django.shortcuts import render

from .models import Product


def catalogue(request):
    return render(request, "shop/catalogue.html", {"products": Product.objects.order_by("pk")})
