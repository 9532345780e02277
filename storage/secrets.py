"""wolkvox tokens at rest: encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`).

Keys come from ``AGENTBOX_ENCRYPTION_KEYS``: comma-separated Fernet keys, the newest first. Every
key decrypts; only the newest encrypts. To rotate: put a new key first, keep the old ones after it,
run ``agentbox keys rotate`` (re-encrypts every token with the newest key), then drop the old keys.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretsError(Exception):
    """The keys are missing or wrong; the message says what to do."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


class TokenCipher:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretsError(
                "AGENTBOX_ENCRYPTION_KEYS is not set, so agentbox cannot store wolkvox tokens. "
                "Generate a key with `agentbox keys generate` and set it."
            )
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except (ValueError, TypeError) as error:
            raise SecretsError(
                "AGENTBOX_ENCRYPTION_KEYS holds a value that is not a Fernet key "
                "(32 url-safe base64 bytes, as `agentbox keys generate` prints)."
            ) from error

    def encrypt(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as error:
            raise SecretsError(
                "a stored wolkvox token cannot be decrypted with AGENTBOX_ENCRYPTION_KEYS "
                "(was the key that encrypted it removed?)"
            ) from error

    def rotate(self, ciphertext: str) -> str:
        """The same token, encrypted with the newest key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken as error:
            raise SecretsError("a stored token cannot be decrypted with any key") from error
