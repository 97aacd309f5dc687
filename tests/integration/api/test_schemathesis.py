"""Schema-driven fuzzing of the whole API with schemathesis, in-process over ASGI.

Every operation in /api/v1/openapi.json gets positive and negative examples, as an admin (so
the deep paths run) and anonymously. Asserted: no 5xx, every 4xx is the error envelope, and
each response conforms to the schema (documented status, matching body and headers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from anyio.from_thread import start_blocking_portal
from apisafety import Minter
from cryptography.fernet import Fernet
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from schemathesis.generation import GenerationMode
from schemathesis.generation.meta import ParameterLocation
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)
from sqlalchemy import delete, update

from quantdesk.api import create_app
from quantdesk.auth.roles import Role
from quantdesk.core.risk import LIMIT_FIELDS
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.risk.models import DEFAULT_SCOPE, RiskLimitsRow, RiskStateRow
from quantdesk.settings import Settings

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 25
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # reproducible in CI; raise max_examples locally to explore further
    # No shrinking: it took minutes per failure; the raw failing example is reported as is.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzz_settings(
    db_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    make_settings_fn: Callable[..., Settings],
) -> Settings:
    # A broker-secrets key, as any non-SQLite installation must have (without one, storing a
    # broker secret is a deliberate 503 BROKER_SECRETS_UNAVAILABLE, tested in tests/integration/
    # brokers).
    return make_settings_fn(
        db_url, tmp_path_factory.mktemp("fuzz"), secrets_key=Fernet.generate_key().decode()
    )


@pytest.fixture(scope="module")
def fuzz_app(fuzz_settings: Settings) -> Iterator[FastAPI]:
    application = create_app(fuzz_settings)
    yield application
    # schemathesis started the app's lifespan on its own event loop thread; end it before the
    # test database goes away.
    asgi.shutdown_lifespans()
    # The fuzzer, as an admin, engages kill switches and sets platform limits, and
    # the database is shared with the tests that follow, so put risk back to "no limits".
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _reset_risk(fuzz_settings)).result()


async def _reset_risk(cfg: Settings) -> None:
    engine = create_engine(cfg.resolved_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(RiskStateRow).values(
                    kill_engaged=False,
                    kill_reason=None,
                    halt_kind=None,
                    halt_reason=None,
                    halted_at=None,
                    halt_day=None,
                )
            )
            await conn.execute(delete(RiskLimitsRow).where(RiskLimitsRow.scope != DEFAULT_SCOPE))
            await conn.execute(
                update(RiskLimitsRow)
                .where(RiskLimitsRow.scope == DEFAULT_SCOPE)
                .values({f: None for f in LIMIT_FIELDS})
            )
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def admin_token(fuzz_settings: Settings, test_password: str) -> Iterator[Callable[[], str]]:
    """A fresh admin session per case.

    Cases log out (ending the session they run under) and change passwords (ending every
    session of that user); a token shared by all cases would turn the rest of the run into
    401s. The user is restored to an active admin each time for the same reason, and the
    session is written straight to the database: the login endpoint is throttled per IP, and
    the fuzzer fails logins from that IP on purpose."""
    with start_blocking_portal() as portal:
        engine = create_engine(fuzz_settings.resolved_database_url)
        minter = Minter(create_sessionmaker(engine), fuzz_settings)
        admin = portal.call(partial(minter.user, Role.ADMIN, test_password, name="fuzz_admin"))

        async def fresh() -> str:
            await minter.set_active(admin.id, True)
            return await minter.token(admin)

        yield lambda: portal.call(fresh)
        portal.call(engine.dispose)


# Built-in checks replaced by stricter-where-it-matters versions in this module:
# - positive_data_acceptance wants 2xx for any schema-valid request, but a domain rule the
#   schema cannot express (password policy, EXCHANGE:SYMBOL refs, a rejected instrument file)
#   legitimately answers 422. Our version: a schema-valid request must pass REQUEST validation
#   (no pydantic error pointing at a body/query/path/header location); domain codes may refuse.
REPLACED = [positive_data_acceptance]
# Known gaps; remove an entry when it is fixed.
KNOWN_GAPS: dict[str, list[Any]] = {}
REQUEST_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def assert_error_envelope(response: Any) -> None:
    if not 400 <= response.status_code < 500 or not response.content:
        return
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["code"], str), body
    assert body["error"]["code"], body
    assert isinstance(body["error"]["message"], str), body


def assert_schema_valid_request_passes_request_validation(case: Any, response: Any) -> None:
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return
    if case.method.upper() not in case.operation.schema.raw_schema["paths"][case.path]:
        return  # a probe with a method the path does not have
    if response.status_code not in (400, 422):
        return
    details = response.json()["error"]["details"]
    offending = [
        d
        for d in details or []
        if isinstance(d, dict)
        and isinstance(d.get("loc"), list)
        and d["loc"]
        and d["loc"][0] in REQUEST_LOCATIONS
    ]
    assert not offending, f"schema-valid request failed request validation: {response.text}"


def _headers_overridden(case: Any, kwargs: dict[str, Any]) -> bool:
    """A negative case whose broken part is its headers, sent with the test's own headers (the
    Authorization of the role under test): the request that arrives is valid, so the check
    that it is refused cannot apply (seen: a dropped Authorization header answered 200)."""
    header = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    return (
        bool(kwargs.get("headers"))
        and header is not None
        and (header.mode is GenerationMode.NEGATIVE)
    )


def run_case(case: Any, app: FastAPI, **kwargs: Any) -> None:
    excluded = REPLACED + KNOWN_GAPS.get(f"{case.method.upper()} {case.path}", [])
    if _headers_overridden(case, kwargs):
        excluded = [*excluded, negative_data_rejection]
    response = case.call_and_validate(app=app, excluded_checks=excluded, **kwargs)
    assert response.status_code < 500, response.text
    assert_error_envelope(response)
    assert_schema_valid_request_passes_request_validation(case, response)


def _schema() -> Any:
    """The schema, loaded at import time from an app of the same code.

    Cases are sent to the per-backend app with ``case.call_and_validate(app=...)`` (the
    checks' follow-up probes reuse it). A lazy schema
    (``schemathesis.pytest.from_fixture``) would be the natural fit, but schemathesis 4.32.5
    sets ``request.node._nodeid``, which pytest 9 no longer has."""
    application = create_app(
        Settings(
            database_url="sqlite+aiosqlite:///:memory:",
            jwt_secret="schema-only-" + "x" * 32,
            ui_dir=Path("/nonexistent-ui"),
            redis_url=None,
        )
    )
    # From the app's own schema dict, without starting it (its lifespan needs a database).
    # Setting ``app`` selects the ASGI transport; every call names the real app explicitly.
    loaded = schemathesis.openapi.from_dict(application.openapi())
    loaded.app = application
    return loaded


schema = _schema()


@schema.parametrize()
@FUZZ
def test_api_conforms_to_its_schema_as_admin(
    case: Any, fuzz_app: FastAPI, admin_token: Callable[[], str]
) -> None:
    run_case(case, fuzz_app, headers={"Authorization": f"Bearer {admin_token()}"})


@schema.parametrize()
@FUZZ
def test_api_conforms_to_its_schema_anonymously(case: Any, fuzz_app: FastAPI) -> None:
    run_case(case, fuzz_app)
