"""Each Slack user's own settings: the language they chose (``/agentbox lang es|en``)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.database import Database
from storage.models import UserSetting, utcnow


class UserSettings:
    def __init__(self, database: Database) -> None:
        self._db = database
        #: Called after every write, e.g. to drop an in-memory copy (bot/language.py).
        self.on_change: list[Callable[[], None]] = []

    async def languages(self) -> dict[str, str]:
        """Every user's chosen language (only users who chose one)."""
        async with self._db.sessions() as session:
            rows = await session.execute(select(UserSetting.user_id, UserSetting.language))
            return {user_id: language for user_id, language in rows}

    async def language(self, user_id: str) -> str | None:
        async with self._db.sessions() as session:
            chosen = await session.scalar(
                select(UserSetting.language).where(UserSetting.user_id == user_id)
            )
            return chosen

    async def set_language(self, user_id: str, language: str | None) -> None:
        """Remember ``user_id``'s language; None forgets it (they follow Slack's again)."""
        async with self._db.transaction() as session:
            if language is None:
                await session.execute(delete(UserSetting).where(UserSetting.user_id == user_id))
            else:
                # One statement, so two replicas setting it at once cannot collide.
                insert = postgresql.insert if self._db.dialect == "postgresql" else sqlite.insert
                values = {"user_id": user_id, "language": language, "updated_at": utcnow()}
                statement = insert(UserSetting).values(**values)
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=[UserSetting.user_id],
                        set_={"language": language, "updated_at": values["updated_at"]},
                    )
                )
        for listener in self.on_change:
            listener()
