"""Small real images and styles for the Django-side tests."""

import io

from django.core.files.base import ContentFile
from PIL import Image, ImageDraw

from styletransfer.models import Style
from styletransfer.services import style_save


def product_png(color=(200, 40, 40), size=96) -> bytes:
    """A product cut-out: a coloured disc on a transparent background."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse([size // 4, size // 4, 3 * size // 4, 3 * size // 4], fill=color)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def painting_jpeg(seed: int = 0, size=96) -> bytes:
    """A busy striped 'painting'."""
    image = Image.new("RGB", (size, size), (20 + seed * 30 % 200, 60, 140))
    draw = ImageDraw.Draw(image)
    for x in range(0, size, 8):
        draw.line([(x, 0), (size - x, size)], fill=(240, 200 - seed * 20 % 200, 30), width=3)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def make_style(slug="test-style", *, engine="color", active=False, seed=0, **fields) -> Style:
    style = Style(
        slug=slug,
        name=slug.replace("-", " ").title(),
        engine=engine,
        size=fields.pop("size", 96),
        mode=fields.pop("mode", "product"),
        active=active,
        **fields,
    )
    style.reference_image.save(f"{slug}.jpg", ContentFile(painting_jpeg(seed)), save=False)
    return style_save(style=style)
