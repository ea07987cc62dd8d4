"""The embedded default's shared cache: Django's file cache, culled on one write in
CULL_EVERY instead of on every write.

Django's FileBasedCache lists its whole folder before each write to see whether it must
cull, so a first view that caches 24 products' assignments listed it 24 times, and pages
slowed as the folder grew (bench/page.py without CACHE_URL).
"""

from django.core.cache.backends.filebased import FileBasedCache

CULL_EVERY = 64


class FileCache(FileBasedCache):
    _writes = 0

    def _cull(self) -> None:
        self._writes += 1
        if self._writes % CULL_EVERY == 1:  # the first write of each instance, then 1 in 64
            super()._cull()
