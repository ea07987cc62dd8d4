"""A second, differently shaped shop: string primary keys and photos in a related table."""

from django.db import models


class Item(models.Model):
    sku = models.CharField(max_length=32, primary_key=True)
    title = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.title


class ItemPhoto(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="photos")
    rank = models.PositiveSmallIntegerField(default=0)
    picture = models.ImageField(upload_to="testshop/")

    class Meta:
        ordering = ["rank", "pk"]

    def __str__(self) -> str:
        return f"{self.item_id} #{self.rank}"


def item_photos(item: Item) -> list:
    """What the shop names in STYLETRANSFER['PRODUCT_IMAGES']."""
    return [photo.picture for photo in item.photos.all()]
