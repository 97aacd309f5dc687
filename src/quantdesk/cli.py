"""The ``quantdesk`` command line."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from quantdesk import __version__
from quantdesk.auth.roles import Role
from quantdesk.backtest.cli import backtest_app, strategies_app
from quantdesk.charges.cli import charges_command
from quantdesk.market.cli import data_app, demo_app
from quantdesk.market.instruments_cli import app as instruments_app
from quantdesk.ml.cli import ml_app
from quantdesk.observability.audit_cli import audit_app
from quantdesk.settings import ConfigError, Settings
from quantdesk.wallet.cli import app as ledger_app

if TYPE_CHECKING:
    from quantdesk.bootstrap import DemoCredential

app = typer.Typer(
    help="QuantDesk: self-hosted algorithmic trading platform.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(instruments_app, name="instruments")
app.command("charges")(charges_command)
app.add_typer(data_app, name="data")
app.add_typer(demo_app, name="demo")
app.add_typer(ledger_app, name="ledger")
app.add_typer(strategies_app, name="strategies")
app.add_typer(ml_app, name="ml")
app.add_typer(backtest_app, name="backtest")
app.add_typer(audit_app, name="audit")
alerts_app = typer.Typer(help="Alerts: Telegram and e-mail.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")

console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    try:
        settings = Settings()
        _ = settings.jwt_key
    except ConfigError as exc:
        err.print(f"[bold red]Configuration error:[/] {exc}")
        raise typer.Exit(2) from exc
    except ValueError as exc:  # pydantic validation of QUANTDESK_* variables
        err.print(f"[bold red]Invalid settings:[/] {exc}")
        raise typer.Exit(2) from exc
    return settings


def _version(value: bool) -> None:
    if value:
        console.print(f"quantdesk {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """QuantDesk: data -> models -> backtests -> paper and live trading."""


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    from quantdesk.db.migrate import current, upgrade

    settings = _settings()
    url = settings.resolved_database_url
    with console.status("Migrating the database..."):
        upgrade(url, revision)
    console.print(f"Database at revision [bold]{asyncio.run(current(url))}[/].")


@db_app.command("current")
def db_current() -> None:
    """Show the revision the database is at."""
    from quantdesk.db.migrate import current

    console.print(asyncio.run(current(_settings().resolved_database_url)) or "(empty database)")


@users_app.command("create")
def users_create(
    username: str,
    role: Annotated[Role, typer.Option(help="admin, trader or viewer.")] = Role.TRADER,
) -> None:
    """Create a user. The password is read from QUANTDESK_PASSWORD, or asked for (hidden)."""
    from quantdesk.auth import users
    from quantdesk.bootstrap import cli_actor
    from quantdesk.db.engine import create_engine, create_sessionmaker
    from quantdesk.errors import AppError

    settings = _settings()
    password = os.environ.get("QUANTDESK_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            err.print("Set QUANTDESK_PASSWORD or run in a terminal to be asked for the password.")
            raise typer.Exit(2)
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def run() -> None:
        engine = create_engine(settings.resolved_database_url)
        try:
            async with create_sessionmaker(engine)() as db:
                user = await users.create_user(
                    db,
                    cli_actor(),
                    username=username,
                    password=password,
                    role=role,
                    bcrypt_rounds=settings.bcrypt_rounds,
                )
                console.print(f"Created user [bold]{user.username}[/] (id {user.id}, {user.role}).")
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except AppError as exc:
        err.print(f"[bold red]{exc.code}:[/] {exc.message}")
        raise typer.Exit(1) from exc


@users_app.command("list")
def users_list() -> None:
    """List users."""
    from quantdesk.auth import users
    from quantdesk.db.engine import create_engine, create_sessionmaker

    settings = _settings()

    async def run() -> None:
        engine = create_engine(settings.resolved_database_url)
        try:
            async with create_sessionmaker(engine)() as db:
                rows, total = await users.list_users(db, limit=10_000)
        finally:
            await engine.dispose()
        table = Table("id", "username", "role", "active", "created", title=f"{total} users")
        for u in rows:
            table.add_row(
                str(u.id),
                u.username,
                u.role,
                "yes" if u.is_active else "no",
                u.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            )
        console.print(table)

    asyncio.run(run())


@alerts_app.command("test")
def alerts_test(
    message: Annotated[str, typer.Option("--message", "-m", help="The alert's text.")] = (
        "A test alert from QuantDesk: this channel works."
    ),
) -> None:
    """Send a test alert on every configured channel. Exit 0 when all delivered, 1 when one
    failed (the log says why), 2 when none is configured."""
    from quantdesk.alerts.cli import send_test_alert

    outcome = send_test_alert(_settings(), message)
    if outcome is None:
        err.print("No alert channel is configured: see docs/alerts.md (QUANTDESK_ALERT_*).")
        raise typer.Exit(2)
    for name, sent in outcome.items():
        console.print(f"{name}: {'[green]sent[/]' if sent else '[bold red]failed[/]'}")
    if not all(outcome.values()):
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo",
            help="Create demo users (and demo data) on first start. Default: on for SQLite.",
        ),
    ] = None,
) -> None:
    """Start the platform: API, WebSocket, market feed, paper broker (and the web UI once built)."""
    import uvicorn

    from quantdesk.api import create_app
    from quantdesk.bootstrap import ensure_demo_users
    from quantdesk.datadir import PROCESS_UMASK, prepare_data_dir
    from quantdesk.db.migrate import upgrade
    from quantdesk.errors import AppError
    from quantdesk.market.cli import seed_demo_data
    from quantdesk.observability.logging import configure_logging

    # Everything this process and its workers create from here on is private to its user.
    os.umask(PROCESS_UMASK)
    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)
    prepare_data_dir(settings)
    if settings.auto_migrate:
        with console.status("Migrating the database..."):
            upgrade(settings.resolved_database_url)
    if demo if demo is not None else settings.is_sqlite:
        try:
            created = asyncio.run(ensure_demo_users(settings))
        except AppError as exc:
            err.print(f"[bold red]Cannot create the demo users: {exc.code}:[/] {exc.message}")
            raise typer.Exit(2) from exc
        if created:
            _show_credentials(created)
        seed_demo_data(settings, console)  # first start only: a no-op once bars are stored
        if created:
            from quantdesk.bootstrap import queue_demo_backtest

            if asyncio.run(queue_demo_backtest(settings)):
                console.print(
                    "Queued a demo backtest (sma_cross on NSE:INFY, daily): see Backtests."
                )
    console.print(f"QuantDesk on [bold]http://{host}:{port}/[/] (API docs at /api/v1/docs)")
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)


@app.command()
def openapi(
    output: Annotated[
        str, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = "-",
) -> None:
    """Print the API's OpenAPI schema (JSON): what the web UI's types are generated from
    (`quantdesk openapi -o frontend/openapi.json`, then `npm run gen:api` in frontend/)."""
    import json
    from pathlib import Path

    from quantdesk.api import create_app

    # Any valid settings: the schema does not depend on them, and nothing is connected.
    schema = create_app(
        Settings(database_url="sqlite+aiosqlite:///:memory:", jwt_secret="x" * 40)
    ).openapi()
    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    if output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
        console.print(f"Wrote the OpenAPI schema to {output}")


def _show_credentials(created: list[DemoCredential]) -> None:
    lines = [
        f"{c.role.value:<7} {c.username:<8} "
        + (c.password if c.generated else f"(QUANTDESK_DEMO_{c.username.upper()}_PASSWORD)")
        for c in created
    ]
    if any(c.generated for c in created):
        lines += ["", "Shown once: only bcrypt hashes are stored."]
    console.print(Panel("\n".join(lines), title="Demo users created"))


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
