"""Refit the preference model now."""

from django.core.management.base import BaseCommand, CommandError

from stylerec.fitting import preference_fit_full


class Command(BaseCommand):
    help = "Refit the style space, the population preference and every shopper's preference."

    def handle(self, *args, **options):
        model = preference_fit_full()
        if model is None:
            raise CommandError("No style has an embedding yet; start a render worker first.")
        self.stdout.write(
            f"Fitted model {model.version}: {model.shoppers} shoppers, {model.decisions} decisions "
            f"in {model.fit_seconds:.2f} s"
        )
