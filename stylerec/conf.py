"""The STYLEREC settings dict, its defaults (read through styletransfer's AppSettings), and
the system checks of those settings."""

from typing import Any

from django.conf import settings
from django.core import checks

from styletransfer.conf import AppSettings
from styletransfer.conf import conf as styletransfer_conf

DEFAULTS: dict[str, Any] = {
    # The shop's product model, "app_label.ModelName" (renditions come from styletransfer).
    "PRODUCT_MODEL": None,
    # Reward of a decision: the sum of these weights over the distinct kinds of event that
    # followed it within REWARD_WINDOW seconds (a retried beacon cannot count twice).
    "REWARD_WEIGHTS": {"click": 1.0, "add_to_cart": 0.5, "purchase": 1.0},
    "REWARD_WINDOW": 24 * 3600,
    # Weight add-to-carts and purchases by their value: weight x value / REWARD_VALUE_UNIT
    # (a purchase worth one unit counts as its weight; events without a value, as before).
    "REWARD_BY_VALUE": False,
    "REWARD_VALUE_UNIT": 100.0,
    # The shop's ISO 4217 currency, for values sent without one ("": each value names its own).
    "CURRENCY": "",
    # Decisions older than this are left out of a fit.
    "FIT_LOOKBACK_DAYS": 90,
    # Stable assignments (stylerec.serving.assignment): a shopper keeps the image drawn for a
    # product until the model's version changes or REDRAW_INTERVAL seconds pass (0: never).
    # The draw hashes (shopper, product, epoch) with ASSIGNMENT_SALT (None: derived from
    # SECRET_KEY); whoever holds the salt can replay every logged draw.
    "REDRAW_INTERVAL": 24 * 3600,
    "ASSIGNMENT_SALT": None,
    # Share of shoppers (by a stable hash) who always see the original photos: the control
    # group that lift is measured against (stylerec_report). 0 turns it off.
    "CONTROL_SHARE": 0.10,
    # Exploration defaults until staff save live values on the dashboard (loop_settings).
    "POLICY": "thompson",
    "UNIFORM_SHARE": 0.05,
    "EXPLORATION_STRENGTH": 0.25,  # Thompson: posterior std x 0.25 (bench/choose.py --compare)
    "THOMPSON_DRAWS": 128,
    # The mobile API's products: a dotted path to a DRF serializer of the shop's own fields
    # (None: id and str(product)), the fields ?search= looks in, the lookup ?category= filters
    # on (e.g. "category__slug"), and relations the serializer reads (select_related).
    "PRODUCT_SERIALIZER": None,
    "PRODUCT_SEARCH_FIELDS": [],
    "PRODUCT_CATEGORY_LOOKUP": None,
    "PRODUCT_SELECT_RELATED": [],
    # The default serializer's price: the name of the product's price attribute, or None.
    "PRODUCT_PRICE_FIELD": None,
    # Requests whose views teach the loop nothing: they see the original photos, log no
    # decision, load no beacon and make no shopper. Crawlers, by a regular expression
    # searched in the User-Agent (case-insensitive; "" for none)...
    "UNTRACKED_USER_AGENTS": (
        r"bot\b|bot/|crawl|spider|slurp|bingpreview|facebookexternalhit|embedly|"
        r"mediapartners-google|ia_archiver|lighthouse|pingdom|uptime"
    ),
    # ...a dotted path to callable(request) -> bool the shop adds (editor previews: a CMS's
    # preview flag, a draft page), and staff, when False here.
    "UNTRACKED_REQUESTS": None,
    "TRACK_STAFF": True,
    # Events and decisions older than this many days are deleted daily (stylerec.prune; None
    # keeps them forever). A fit reads FIT_LOOKBACK_DAYS of decisions and REWARD_WINDOW of
    # events after each: that much is kept whatever this says (stylerec.W004 says so).
    "EVENT_RETENTION_DAYS": 180,
    # Events API limits.
    "MAX_EVENTS_PER_BATCH": 500,
    "MAX_EVENT_AGE_DAYS": 7,
    # PostgreSQL: write a page's decisions on a connection of the log's own while the page
    # renders (stylerec.serving.decision_log); False writes them before rendering, on Django's.
    "BACKGROUND_DECISION_LOG": True,
    # Cache (Django's CACHES alias) holding the fitted model and shopper preferences.
    "CACHE_ALIAS": "default",
    "CACHE_TIMEOUT": 24 * 3600,
}


conf = AppSettings(
    "STYLEREC", DEFAULTS, import_strings=["PRODUCT_SERIALIZER", "UNTRACKED_REQUESTS"]
)

# Celery beat's entries for both apps, importable from a shop's settings (this module reads
# no setting when imported): `from stylerec.conf import BEAT_SCHEDULE as CELERY_BEAT_SCHEDULE`.
# Each task names its own queue (default), so beat's messages reach the README's workers.
BEAT_SCHEDULE: dict[str, dict] = {
    "styletransfer-sweep": {"task": "styletransfer.sweep", "schedule": 300.0},
    "stylerec-fit": {"task": "stylerec.fit", "schedule": 3600.0},
    "stylerec-update-recent": {"task": "stylerec.update_recent", "schedule": 120.0},
    "stylerec-prune": {"task": "stylerec.prune", "schedule": 86400.0},
}


# System checks live here, with the settings they check (apps.ready registers them).


def _check_known_keys(app_configs, **kwargs) -> list[checks.CheckMessage]:
    return conf.check_keys()


def _check_product_model(app_configs, **kwargs) -> list[checks.CheckMessage]:
    hint = "e.g. STYLEREC = {'PRODUCT_MODEL': 'shop.Product'}"
    if not isinstance(getattr(settings, "STYLEREC", None) or {}, dict):
        return []  # check_keys says so (stylerec.E000)
    if not conf.PRODUCT_MODEL:
        return [
            checks.Error(
                "Set STYLEREC['PRODUCT_MODEL'] to your product model.",
                hint=hint,
                id="stylerec.E001",
            )
        ]
    try:
        conf.product_model()
    except (LookupError, ValueError) as exc:
        return [
            checks.Error(
                f"STYLEREC['PRODUCT_MODEL'] is not a model: {exc}", hint=hint, id="stylerec.E002"
            )
        ]
    theirs = styletransfer_conf.PRODUCT_MODEL
    if theirs and theirs != conf.PRODUCT_MODEL:
        return [
            checks.Error(
                f"STYLEREC['PRODUCT_MODEL'] is {conf.PRODUCT_MODEL!r} but "
                f"STYLETRANSFER['PRODUCT_MODEL'] is {theirs!r}: the API would list one model's "
                "products with another model's renditions.",
                hint="Name the same product model in both.",
                id="stylerec.E003",
            )
        ]
    return []


def _check_loop(app_configs, **kwargs) -> list[checks.CheckMessage]:
    if not isinstance(getattr(settings, "STYLEREC", None) or {}, dict):
        return []  # check_keys says so (stylerec.E000)
    errors = []
    share = conf.CONTROL_SHARE
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
        errors.append(
            checks.Error(
                f"STYLEREC['CONTROL_SHARE'] must be a number from 0 to below 1, not {share!r}.",
                hint="e.g. 0.1: one shopper in ten sees the original photos only.",
                id="stylerec.E004",
            )
        )
    interval = conf.REDRAW_INTERVAL
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0:
        errors.append(
            checks.Error(
                f"STYLEREC['REDRAW_INTERVAL'] must be seconds >= 0, not {interval!r}.",
                hint="0 keeps each assignment until the model's version changes.",
                id="stylerec.E005",
            )
        )
    window = conf.REWARD_WINDOW
    if (
        not errors
        and isinstance(window, int | float)
        and isinstance(interval, int | float)
        and interval > window
    ):
        errors.append(
            checks.Warning(
                f"STYLEREC['REDRAW_INTERVAL'] ({interval} s) is longer than REWARD_WINDOW "
                f"({window} s): a click on a repeated view of an image more than REWARD_WINDOW "
                "after its decision does not count towards its reward.",
                hint="Keep REDRAW_INTERVAL <= REWARD_WINDOW.",
                id="stylerec.W001",
            )
        )
    unit = conf.REWARD_VALUE_UNIT
    if isinstance(unit, bool) or not isinstance(unit, int | float) or not unit > 0:
        errors.append(
            checks.Error(
                f"STYLEREC['REWARD_VALUE_UNIT'] must be a number > 0, not {unit!r}.",
                id="stylerec.E009",
            )
        )
    currency = conf.CURRENCY
    if currency and not (isinstance(currency, str) and len(currency) == 3 and currency.isupper()):
        errors.append(
            checks.Error(
                f"STYLEREC['CURRENCY'] must be an ISO 4217 code such as 'EUR', not {currency!r}.",
                id="stylerec.E010",
            )
        )
    salt = conf.ASSIGNMENT_SALT
    if salt is not None and (not isinstance(salt, str) or not salt):
        errors.append(
            checks.Error(
                "STYLEREC['ASSIGNMENT_SALT'] must be a non-empty string or None.",
                id="stylerec.E006",
            )
        )
    return errors


REQUEST_PROCESSOR = "django.template.context_processors.request"


def _check_request_context(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """The tags choose per shopper: a page rendered without the request would be an error."""
    engines = [
        engine
        for engine in settings.TEMPLATES
        if engine.get("BACKEND") == "django.template.backends.django.DjangoTemplates"
    ]
    if not engines or any(
        REQUEST_PROCESSOR in engine.get("OPTIONS", {}).get("context_processors", [])
        for engine in engines
    ):
        return []
    return [
        checks.Error(
            f"stylerec's template tags need {REQUEST_PROCESSOR!r} in TEMPLATES' "
            "context_processors (startproject's settings have it).",
            id="stylerec.E007",
        )
    ]


def _check_retention(app_configs, **kwargs) -> list[checks.CheckMessage]:
    days = conf.EVENT_RETENTION_DAYS
    if days is None:
        return []
    if isinstance(days, bool) or not isinstance(days, int | float) or days <= 0:
        return [
            checks.Error(
                f"STYLEREC['EVENT_RETENTION_DAYS'] must be a number of days or None, not {days!r}",
                id="stylerec.E008",
            )
        ]
    fit_days = conf.FIT_LOOKBACK_DAYS + conf.REWARD_WINDOW / 86400
    if days < fit_days:
        return [
            checks.Warning(
                f"STYLEREC['EVENT_RETENTION_DAYS'] is {days} but a fit reads {fit_days:g} days "
                "(FIT_LOOKBACK_DAYS + REWARD_WINDOW): that much is kept anyway.",
                hint="Raise EVENT_RETENTION_DAYS, or lower FIT_LOOKBACK_DAYS.",
                id="stylerec.W004",
            )
        ]
    return []


def register_checks() -> None:
    checks.register(_check_known_keys)
    checks.register(_check_product_model)
    checks.register(_check_request_context)
    checks.register(_check_loop)
    checks.register(_check_retention)
