"""django-oscar: its product photos (the related ProductImage table, in display order) for
STYLETRANSFER['PRODUCT_IMAGES']; imports nothing of Oscar until a product is asked about."""


def product_images(product) -> list:
    """The product's photos, primary first; a variant without photos of its own shows its
    parent's, as Oscar's own templates do (Product.primary_image)."""
    images = list(product.images.all())  # ProductImage.Meta.ordering: display_order
    if not images and product.is_child and product.parent_id:
        images = list(product.parent.images.all())
    return [image.original for image in images]
