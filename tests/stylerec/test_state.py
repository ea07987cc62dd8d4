"""What the request path reads from the cache survives entries it cannot read."""

import importlib

from django.core.cache import cache

from stylerec.loop_settings import SETTINGS_KEY
from stylerec.serving.state import MODEL_VERSION_KEY, STYLES_KEY, active_styles

from .helpers import images


class FromAnOlderRelease:
    """Unpickles by importing a module that no longer exists, as an entry written before a
    module moved would (a shared cache outlives a deploy)."""

    def __reduce__(self):
        return importlib.import_module, ("stylerec.store",)


def test_entries_pickled_by_an_older_release_are_misses_and_are_written_anew(client, shop):
    assert len(images(client.get("/").content.decode())) == 6  # warm: the entries exist
    for key in (STYLES_KEY, SETTINGS_KEY, MODEL_VERSION_KEY):
        cache.set(key, FromAnOlderRelease())
    response = client.get("/")
    assert response.status_code == 200
    shown = images(response.content.decode())
    assert len(shown) == 6 and any(image["data-style"] != "original" for image in shown)
    assert [s.slug for s in cache.get(STYLES_KEY)] == [s.slug for s in active_styles()]
    assert cache.get(SETTINGS_KEY).personalization_enabled
