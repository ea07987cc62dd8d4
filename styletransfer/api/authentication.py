"""Token authentication for the shop's API apps, hardened against keys no database can hold."""

from rest_framework import authentication, exceptions


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's `Authorization: Token <key>`; a key with a NUL is refused before PostgreSQL sees
    it (which would answer with an error, and the client with a 500)."""

    def authenticate_credentials(self, key: str):
        if "\x00" in key or len(key) > 128:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(key)
