"""The demo shop's side of the API: its product fields (STYLEREC['PRODUCT_SERIALIZER']), 404s."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers

from .models import Category, Product


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["slug", "name"]


class ProductSerializer(serializers.ModelSerializer):
    """A product of the demo shop; stylerec adds its original and personalized images."""

    category = CategorySerializer(read_only=True)
    url = serializers.SerializerMethodField(help_text="The product's page in the web shop.")

    class Meta:
        model = Product
        fields = ["id", "name", "slug", "description", "price", "category", "url"]
        read_only_fields = fields

    def get_url(self, product: Product) -> str:
        request = self.context.get("request")
        url = product.get_absolute_url()
        return request.build_absolute_uri(url) if request is not None else url


@csrf_exempt  # it changes nothing; a CSRF failure page would not be in the API's shape
def api_not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Unknown URLs under /api/ answer in the API's error shape, not with an HTML page."""
    return JsonResponse({"detail": "Not found."}, status=404)
