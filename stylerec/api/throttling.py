"""Rate limits per scope, counted per shopper for app installs that call with a shopper token."""

from styletransfer.api.base import ScopedRateThrottle

from ..models import Shopper


class ShopperScopedRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle counts a signed-in user by pk and anyone else by IP; an app
    install's stand-in user has no pk, so without this every install would share one count."""

    def get_cache_key(self, request, view):
        if isinstance(request.auth, Shopper):
            return self.cache_format % {"scope": self.scope, "ident": f"shopper-{request.auth.pk}"}
        return super().get_cache_key(request, view)
