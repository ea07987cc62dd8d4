"""The embedded default's file cache lists its folder to cull on one write in CULL_EVERY, and
still culls: it never grows past MAX_ENTRIES by more than CULL_EVERY writes."""

from django.core.cache.backends.filebased import FileBasedCache

from storefront import file_cache
from storefront.file_cache import CULL_EVERY, FileCache


def test_a_page_of_writes_lists_the_folder_once(tmp_path, monkeypatch):
    cache = FileCache(str(tmp_path), {})
    listed = []
    real = FileBasedCache._list_cache_files
    monkeypatch.setattr(FileBasedCache, "_list_cache_files", lambda s: listed.append(1) or real(s))
    cache.set_many({f"assignment-{n}": n for n in range(24)})
    assert len(listed) == 1, "Django's own cache lists it once per key: 24 times"
    assert cache.get_many([f"assignment-{n}" for n in range(24)]) == {
        f"assignment-{n}": n for n in range(24)
    }


def test_it_still_culls(tmp_path):
    cache = FileCache(str(tmp_path), {"OPTIONS": {"MAX_ENTRIES": 50, "CULL_FREQUENCY": 2}})
    for n in range(400):
        cache.set(f"key-{n}", n)
    files = list(tmp_path.glob(f"*{FileBasedCache.cache_suffix}"))
    assert 0 < len(files) <= 50 + CULL_EVERY
    assert file_cache.FileCache.__mro__[1] is FileBasedCache  # checks still see a file cache
