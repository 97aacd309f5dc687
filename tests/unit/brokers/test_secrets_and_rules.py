"""Broker secrets encryption, the live-trading switch, and the adapter interface's values."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from quantdesk.brokers.accounts import live_allowed, mask_key
from quantdesk.brokers.base import (
    BrokerError,
    BrokerErrorCode,
    BrokerExecution,
    BrokerId,
    OrderRequest,
    derive_status,
)
from quantdesk.brokers.secrets import (
    KEY_FILE,
    FernetStore,
    SecretsUnavailable,
    SecretsUnreadable,
    fernet_keys,
)
from quantdesk.core.orders import Order, OrderStatus, OrderType, Product, Side, TimeInForce
from quantdesk.settings import Settings

KEY_A = Fernet.generate_key()
KEY_B = Fernet.generate_key()
STORE = FernetStore([KEY_A])


def settings(**values: object) -> Settings:
    return Settings(jwt_secret="j" * 40, **values)  # type: ignore[arg-type]


# --- encryption -------------------------------------------------------------------------------

# Eight characters and up: a shorter plaintext could occur in a base64 ciphertext by chance.
secret_text = st.text(min_size=8, max_size=300)


@given(values=st.dictionaries(st.sampled_from(["api_secret", "access_token"]), secret_text))
def test_encrypt_then_decrypt_gives_the_secrets_back(values: dict[str, str]) -> None:
    assert STORE.decrypt(STORE.encrypt(values)) == values


@given(secret=secret_text)
def test_a_ciphertext_never_contains_its_plaintext(secret: str) -> None:
    token = STORE.encrypt({"api_secret": secret})
    assert secret not in token
    assert secret.encode("utf-8", "surrogatepass") not in token.encode()
    assert "api_secret" not in token  # nor the field names


def test_the_same_secret_encrypts_differently_each_time() -> None:
    assert STORE.encrypt({"api_secret": "x" * 16}) != STORE.encrypt({"api_secret": "x" * 16})


def test_a_wrong_key_is_unreadable_and_the_old_key_second_rotates() -> None:
    token = STORE.encrypt({"api_secret": "s" * 20})
    with pytest.raises(SecretsUnreadable) as caught:
        FernetStore([KEY_B]).decrypt(token)
    assert caught.value.code == "BROKER_SECRETS_UNREADABLE" and caught.value.status_code == 503
    assert "s" * 20 not in caught.value.message
    rotated = FernetStore([KEY_B, KEY_A])
    assert rotated.decrypt(token) == {"api_secret": "s" * 20}
    assert FernetStore([KEY_B]).decrypt(rotated.encrypt({"k": "v" * 8})) == {"k": "v" * 8}


@pytest.mark.parametrize("garbage", ["", "not-a-token", "gAAAAA" + "x" * 80, "ü"])
def test_garbage_in_the_column_is_unreadable_not_a_crash(garbage: str) -> None:
    with pytest.raises(SecretsUnreadable):
        STORE.decrypt(garbage)


# --- the key ----------------------------------------------------------------------------------


def test_keys_come_from_the_setting_first_encrypting(tmp_path: Path) -> None:
    s = settings(data_dir=tmp_path, secrets_key=f"{KEY_A.decode()}, {KEY_B.decode()}")
    assert fernet_keys(s) == [KEY_A, KEY_B]
    assert not (tmp_path / KEY_FILE).exists()


def test_embedded_sqlite_makes_one_private_key_file_once(tmp_path: Path) -> None:
    s = settings(data_dir=tmp_path / "data")
    first = fernet_keys(s)
    path = tmp_path / "data" / KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert fernet_keys(s) == first
    Fernet(first[0])  # a valid key


def test_other_databases_refuse_without_a_key_naming_the_setting(tmp_path: Path) -> None:
    s = settings(data_dir=tmp_path, database_url="postgresql+asyncpg://u@h/db")
    with pytest.raises(SecretsUnavailable) as caught:
        fernet_keys(s)
    assert caught.value.status_code == 503
    assert "QUANTDESK_SECRETS_KEY" in caught.value.message
    assert not (tmp_path / KEY_FILE).exists()


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("short", id="short"),
        pytest.param("x" * 44, id="not base64 of 32 bytes"),
        pytest.param(f"{KEY_A.decode()},", id="an empty second key"),
        pytest.param("é" * 44, id="not ascii"),
    ],
)
def test_a_malformed_key_stops_the_start(bad: str) -> None:
    with pytest.raises(ValidationError, match="QUANTDESK_SECRETS_KEY"):
        settings(secrets_key=bad)


# --- the live switch --------------------------------------------------------------------------


@dataclasses.dataclass
class Account:
    live_enabled: bool


@pytest.mark.parametrize(
    ("paper_only", "enabled", "allowed"),
    [(True, False, False), (True, True, False), (False, False, False), (False, True, True)],
)
def test_live_needs_the_platform_not_paper_only_and_the_account_enabled(
    paper_only: bool, enabled: bool, allowed: bool
) -> None:
    assert live_allowed(Account(enabled), settings(paper_only=paper_only)) is allowed


def test_the_platform_is_paper_only_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUANTDESK_PAPER_ONLY", raising=False)
    assert settings().paper_only is True
    monkeypatch.setenv("QUANTDESK_PAPER_ONLY", "false")
    assert settings().paper_only is False


def test_broker_urls_default_to_the_real_ones() -> None:
    s = settings()
    assert s.kite_api_root == "https://api.kite.trade"
    assert s.kite_login_url == "https://kite.zerodha.com/connect/login"
    assert s.upstox_api_root == "https://api.upstox.com/v2"
    assert (s.ib_host, s.ib_port) == ("127.0.0.1", 7497)


@pytest.mark.parametrize(
    ("key", "masked"),
    [(None, None), ("abc", "****"), ("abcdefg", "****"), ("abcdefgh", "****efgh")],
)
def test_keys_are_masked_to_their_last_four(key: str | None, masked: str | None) -> None:
    assert mask_key(key) == masked


# --- interface values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "filled", "quantity", "status"),
    [
        (OrderStatus.OPEN, 0, 10, OrderStatus.OPEN),
        (OrderStatus.OPEN, 4, 10, OrderStatus.PARTIALLY_FILLED),
        (OrderStatus.NEW, 4, 10, OrderStatus.PARTIALLY_FILLED),
        (OrderStatus.OPEN, 10, 10, OrderStatus.FILLED),
        (OrderStatus.CANCELLED, 4, 10, OrderStatus.CANCELLED),
        (OrderStatus.REJECTED, 0, 10, OrderStatus.REJECTED),
        (OrderStatus.FILLED, 10, 10, OrderStatus.FILLED),
    ],
)
def test_broker_statuses_become_the_oms_statuses(
    base: OrderStatus, filled: int, quantity: int, status: OrderStatus
) -> None:
    assert derive_status(base, filled, quantity) is status


def test_a_broker_error_carries_the_brokers_words_and_a_platform_code() -> None:
    err = BrokerError(
        BrokerId.KITE, BrokerErrorCode.MARGIN, "Insufficient funds", broker_code="MarginException"
    )
    assert err.code == "BROKER_MARGIN" and err.status_code == 422
    assert err.details == {
        "broker": "kite",
        "broker_code": "MarginException",
        "broker_message": "Insufficient funds",
    }
    assert not err.retryable
    limited = BrokerError(BrokerId.UPSTOX, BrokerErrorCode.RATE_LIMITED, "slow", retry_after=1.4)
    assert limited.retryable and limited.status_code == 429
    assert limited.headers == {"Retry-After": "1"}
    # Never 401: that is the platform's own token, and the UI would log the user out.
    assert all(BrokerError(BrokerId.IB, code, "x").status_code != 401 for code in BrokerErrorCode)


def test_an_order_request_is_built_from_an_oms_order() -> None:
    order = Order(
        id="o1",
        client_order_id="c1",
        account="7",
        symbol="NSE:INFY",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        product=Product.MIS,
        time_in_force=TimeInForce.IOC,
        quantity=5,
        limit_price=Decimal("1500.05"),
    )
    request = OrderRequest.from_order(order, tag="qd:dep42")
    assert (request.symbol, request.quantity, request.limit_price) == (
        "NSE:INFY",
        5,
        Decimal("1500.05"),
    )
    assert (request.product, request.time_in_force, request.tag) == (
        Product.MIS,
        TimeInForce.IOC,
        "qd:dep42",
    )


def test_an_adapter_is_recognised_by_its_shape() -> None:
    class Stub:
        broker = BrokerId.PAPER

        async def connect(self) -> None: ...
        async def close(self) -> None: ...
        async def place(self, request: OrderRequest) -> str:
            return "b1"

        async def modify(self, broker_order_id: str, change: object) -> None: ...
        async def cancel(self, broker_order_id: str) -> None: ...
        def updates(self) -> object:
            return iter(())

        async def orders(self) -> list[object]:
            return []

        async def trades(self) -> list[object]:
            return []

        async def positions(self) -> list[object]:
            return []

        async def holdings(self) -> list[object]:
            return []

        async def funds(self) -> list[object]:
            return []

    assert isinstance(Stub(), BrokerExecution)
