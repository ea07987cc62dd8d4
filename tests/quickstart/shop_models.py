"""The throwaway project's own shop app (not the README's): a product with one photo."""

from django.db import models


class Product(models.Model):
    name = models.CharField(max_length=100)
    image = models.ImageField(upload_to="products/")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"/p/{self.pk}/"
