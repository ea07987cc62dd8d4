"""Seed the demo shop with real products (idempotent: run it as often as you like)."""

import json
import secrets
from decimal import Decimal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.text import slugify

from storefront.models import Category, Product
from styletransfer.models import Style
from styletransfer.services import style_save

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
# Catalogue-wide renders use the one-pass feed-forward engine (about a second per image
# on a laptop CPU); `optimize` is for previews and premium styles.
DEMO_ENGINE = "feedforward"


class Command(BaseCommand):
    help = "Create the demo catalogue from storefront/demo, and optionally an admin user."

    def add_arguments(self, parser):
        parser.add_argument(
            "--admin-password-file",
            help="Create superuser 'admin' if missing; its random password is kept in this file.",
        )

    def handle(self, *args, **options):
        catalog = json.loads((DEMO_DIR / "catalog.json").read_text())
        created = updated = 0
        with transaction.atomic():
            for entry in catalog["products"]:
                was_created = self._upsert_product(entry)
                created += was_created
                updated += not was_created
        self.stdout.write(f"Products: {created} created, {updated} already there.")
        with transaction.atomic():
            new_styles = sum(self._ensure_style(entry) for entry in catalog["styles"])
        self.stdout.write(f"Styles: {new_styles} created (engine {DEMO_ENGINE}), renders queued.")
        if options["admin_password_file"]:
            self._ensure_admin(Path(options["admin_password_file"]))

    def _upsert_product(self, entry: dict) -> bool:
        category, _ = Category.objects.get_or_create(
            slug=slugify(entry["category"]), defaults={"name": entry["category"]}
        )
        product, created = Product.objects.update_or_create(
            slug=entry["slug"],
            defaults={
                "name": entry["name"],
                "description": entry["description"],
                "price": Decimal(entry["price"]),
                "category": category,
            },
            create_defaults={
                "name": entry["name"],
                "description": entry["description"],
                "price": Decimal(entry["price"]),
                "category": category,
                "image": "",
            },
        )
        source = DEMO_DIR / entry["image"]
        if not product.image or not product.image.storage.exists(product.image.name):
            product.image.save(source.name, ContentFile(source.read_bytes()), save=True)
        return created

    def _ensure_style(self, entry: dict) -> bool:
        """Create a demo style once; later runs leave a merchandiser's edits alone."""
        if Style.objects.filter(slug=entry["slug"]).exists():
            return False
        style = Style(
            slug=entry["slug"],
            name=entry["name"],
            description=entry["description"],
            engine=DEMO_ENGINE,
            mode="product",
            active=True,
        )
        source = DEMO_DIR / entry["image"]
        style.reference_image.save(source.name, ContentFile(source.read_bytes()), save=False)
        style_save(style=style)
        return True

    def _ensure_admin(self, password_file: Path) -> None:
        users = get_user_model().objects
        if not users.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            users.create_superuser("admin", "admin@example.com", password)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password)
            password_file.chmod(0o600)
        if password_file.exists():
            password = password_file.read_text()
            self.stdout.write(
                f"Admin: http://127.0.0.1:8000/admin/  user admin  password {password}"
            )
        else:
            self.stdout.write("Admin user 'admin' exists (reset: manage.py changepassword admin).")
