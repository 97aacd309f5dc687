"""First-start work shared by the CLI and tests: schema, demo users."""

from __future__ import annotations

import getpass
import secrets
from dataclasses import dataclass

from quantdesk.auth import users
from quantdesk.auth.models import Role
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.observability.audit import Actor
from quantdesk.settings import Settings


def cli_actor() -> Actor:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        who = "unknown"
    return Actor(None, f"cli:{who}"[:64], None, None)


@dataclass(frozen=True)
class DemoCredential:
    username: str
    password: str
    role: Role
    generated: bool


async def ensure_demo_users(settings: Settings) -> list[DemoCredential]:
    """Create a demo admin and trader when the installation has no user at all.

    Passwords come from QUANTDESK_DEMO_ADMIN_PASSWORD / QUANTDESK_DEMO_TRADER_PASSWORD, or are
    generated. Returns what was created (empty when users already existed), so the caller can
    show generated passwords exactly once: they are stored only as bcrypt hashes.
    """
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            if await users.count_users(db) > 0:
                return []
            created = []
            for name, role, given in (
                ("admin", Role.ADMIN, settings.demo_admin_password),
                ("trader", Role.TRADER, settings.demo_trader_password),
            ):
                password = given.get_secret_value() if given else _generate_password()
                await users.create_user(
                    db,
                    cli_actor(),
                    username=name,
                    password=password,
                    role=role,
                    bcrypt_rounds=settings.bcrypt_rounds,
                )
                created.append(DemoCredential(name, password, role, given is None))
            return created
    finally:
        await engine.dispose()


def _generate_password() -> str:
    return secrets.token_urlsafe(12)
