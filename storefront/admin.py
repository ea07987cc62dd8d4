"""Admin for the demo catalogue, with thumbnails so merchandisers see what they edit."""

from django.contrib import admin
from django.db import models
from django.utils.html import format_html

from styletransfer.models import WebImageFormField

from .models import Category, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["thumbnail", "name", "category", "price"]
    list_display_links = ["thumbnail", "name"]
    list_filter = ["category"]
    search_fields = ["name", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["thumbnail"]
    # Product photos are read only by the web-image decoders the renders use.
    formfield_overrides = {models.ImageField: {"form_class": WebImageFormField}}

    @admin.display(description="Image")
    def thumbnail(self, product: Product) -> str:
        if not product.image:
            return "—"
        return format_html(
            '<img src="{}" alt="" style="width:64px;height:64px;object-fit:contain;'
            'background:#f2f2f4;border-radius:6px">',
            product.image.url,
        )
