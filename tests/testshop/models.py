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


class Picture(models.Model):
    """A CMS's image model: products reach their photo through a ForeignKey to it."""

    title = models.CharField(max_length=100, blank=True)
    file = models.ImageField(upload_to="testshop/pictures/")

    def __str__(self) -> str:
        return self.title or self.file.name


class Page(models.Model):
    """A product that is a CMS page: its photo is a Picture, and it may be unpublished."""

    slug = models.SlugField(primary_key=True)
    title = models.CharField(max_length=200)
    hero = models.ForeignKey(Picture, null=True, on_delete=models.SET_NULL, related_name="+")
    live = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.title


def live_pages():
    """What the CMS shop names in STYLETRANSFER['LIVE_PRODUCTS']: published pages only."""
    return Page.objects.filter(live=True)


def thumbnail_url(image, width: int | None = None) -> str:
    """What a shop names in STYLETRANSFER['ORIGINAL_URL']: its own pipeline's square crop, at
    the width a srcset asks for."""
    size = width or 400
    return f"/thumbnails/{size}x{size}/{image.name}"
