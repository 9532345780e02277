"""Stored tokens are encrypted, and the key can be rotated without losing them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage import migrate
from storage.audit import AuditEntry
from storage.database import Database
from storage.directory import Directory
from storage.models import Decision, Operation
from storage.secrets import SecretsError, TokenCipher, generate_key

TOKEN = "wv-rotate-me-31c7"


def _audit() -> AuditEntry:
    return AuditEntry(user_id="cli", action="operation.put", text="", decision=Decision.ALLOWED)


async def test_rotation_re_encrypts_with_the_new_key_and_the_old_one_can_go(
    database_url: str,
) -> None:
    old, new = generate_key(), generate_key()
    database = Database(database_url)
    await migrate.upgrade(database)
    keys: list[str] = [old]
    directory = Directory(database, lambda: TokenCipher(keys))
    try:
        await directory.put_operation("norte", "0100", TOKEN, concurrency=1, audit=_audit())
        async with database.sessions() as session:
            before = await session.scalar(select(Operation.token_ciphertext))
        assert before is not None and TOKEN not in before

        keys[:] = [new, old]  # the new key first, the old one still there to decrypt
        assert await directory.rotate_tokens() == 1
        keys[:] = [new]  # the old key is dropped
        secret = await directory.operation_secret("norte")

        assert secret is not None and secret[1] == TOKEN
        async with database.sessions() as session:
            after = await session.scalar(select(Operation.token_ciphertext))
        assert after != before
        with pytest.raises(SecretsError):
            TokenCipher([old]).decrypt(after or "")
    finally:
        await database.dispose()


def test_a_missing_or_malformed_key_is_explained() -> None:
    with pytest.raises(SecretsError, match="agentbox keys generate"):
        TokenCipher([])
    with pytest.raises(SecretsError, match="not a Fernet key"):
        TokenCipher(["not-a-key"])
