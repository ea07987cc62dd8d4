"""Request renditions of the whole catalogue for active styles, and optionally wait for them."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from styletransfer import batching, rendering, selectors, services
from styletransfer.conf import conf
from styletransfer.models import Rendition, Style


class Command(BaseCommand):
    help = "Render every product in every active style (or one style) and optionally wait."

    def add_arguments(self, parser):
        parser.add_argument("--style", help="Slug of one style (rendered even if inactive).")
        parser.add_argument(
            "--wait", action="store_true", help="Wait until every rendition is ready or failed."
        )
        parser.add_argument("--timeout", type=float, default=3600, help="Seconds to wait at most.")

    def handle(self, *args, style=None, wait=False, timeout=3600, **options):
        services.styles_rekey()  # the shop may have changed WIDTHS since the styles were saved
        styles = self._styles(style)
        for current in styles:
            after = None
            while True:
                after = services.style_render_catalog(style=current, after_pk=after)
                if after is None:
                    break
        services.renditions_requeue()
        if not wait:
            self.stdout.write(f"Requested renditions for {len(styles)} style(s).")
            return
        in_process = settings.CELERY_BROKER_URL.startswith("filesystem")
        if not self._wait(styles, timeout, in_process):
            raise CommandError(f"Gave up waiting after {timeout:.0f} s.")
        self._report(styles)

    def _styles(self, slug: str | None) -> list[Style]:
        if slug:
            style = Style.objects.filter(slug=slug).first()
            if style is None:
                raise CommandError(f"No style with slug {slug!r}.")
            return [style]
        styles = list(Style.objects.filter(active=True))
        if not styles:
            raise CommandError("No active style: activate one in the admin first.")
        return styles

    def _wait(self, styles: list[Style], timeout: float, in_process: bool) -> bool:
        total = selectors.catalog_size() * len(styles)
        deadline = time.monotonic() + timeout
        next_recovery = time.monotonic() + conf.RECOVERY_INTERVAL
        with tqdm(total=total, desc="renditions", unit="img") as bar:
            while time.monotonic() < deadline:
                open_ids = list(
                    self._current(styles)
                    .filter(status__in=[Rendition.Status.PENDING, Rendition.Status.RENDERING])
                    .values_list("pk", flat=True)
                )
                done = (
                    self._current(styles)
                    .filter(status__in=[Rendition.Status.READY, Rendition.Status.FAILED])
                    .count()
                )
                bar.update(min(done, total) - bar.n)
                if not open_ids:
                    return True
                if time.monotonic() >= next_recovery:
                    # Renders whose worker died (or whose message was lost) are sent again.
                    services.renditions_requeue()
                    next_recovery = time.monotonic() + conf.RECOVERY_INTERVAL
                if in_process:
                    # The embedded default has no render worker to wait for: render here.
                    if not self._render_here(open_ids[: conf.RENDER_BATCH_SIZE]):
                        time.sleep(0.5)  # a local worker holds them
                else:
                    time.sleep(1)
        return False

    def _render_here(self, rendition_ids: list[int]) -> int:
        """Render a batch in this process; returns how many it settled."""
        outcome = batching.renditions_render_batch(rendition_ids=rendition_ids)
        for rendition_id in outcome.out_of_memory:
            rendering.rendition_render(rendition_id=rendition_id, device="cpu")
        return len(outcome.ready) + len(outcome.failed) + len(outcome.out_of_memory)

    def _current(self, styles: list[Style]):
        from django.db.models import F

        return Rendition.objects.filter(style__in=styles, style_version=F("style__version"))

    def _report(self, styles: list[Style]) -> None:
        coverage = selectors.style_coverage(styles)
        failed_total = 0
        for style in styles:
            counts = coverage[style.pk]
            failed_total += counts["failed"]
            self.stdout.write(
                f"{style.slug}: {counts['ready']} ready, {counts['failed']} failed, "
                f"{counts['products']} products"
            )
        if failed_total:
            raise CommandError(f"{failed_total} rendition(s) failed; see the admin for the errors.")
