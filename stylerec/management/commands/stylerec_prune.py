"""Delete events and decisions older than STYLEREC['EVENT_RETENTION_DAYS']."""

from django.core.management.base import BaseCommand

from stylerec.events import events_prunable, events_prune, retention_cutoff


class Command(BaseCommand):
    help = (
        "Delete events and decisions past the retention (EVENT_RETENTION_DAYS); what a fit "
        "reads (FIT_LOOKBACK_DAYS plus REWARD_WINDOW) is always kept."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be deleted."
        )

    def handle(self, *args, dry_run=False, **options):
        cutoff = retention_cutoff()
        if cutoff is None:
            self.stdout.write("EVENT_RETENTION_DAYS is None: events are kept forever.")
            return
        if dry_run:
            counts = events_prunable()
            self.stdout.write(
                f"Would delete {counts['events']} events and {counts['decisions']} decisions "
                f"from before {cutoff:%Y-%m-%d %H:%M} UTC."
            )
            return
        result = events_prune()
        self.stdout.write(
            f"Deleted {result.events} events and {result.decisions} decisions "
            f"from before {result.cutoff:%Y-%m-%d %H:%M} UTC."
        )
