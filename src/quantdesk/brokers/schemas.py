"""Request and response shapes of /api/v1/admin/broker-accounts. Secrets go in, never out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# The connectable brokers. The schema lists them; the service checks them, so an unknown one
# is refused with the code BROKER_UNKNOWN (not a generic validation error).
BROKER_NAMES = ("kite", "upstox", "ib")
BrokerName = Annotated[
    str, Field(min_length=1, max_length=32, json_schema_extra={"enum": list(BROKER_NAMES)})
]
UserRef = Annotated[int, Field(ge=1, le=2_147_483_647)]
ApiKey = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description="The app's API key (Kite api_key, Upstox client id); shown only masked.",
    ),
]
ApiSecret = Annotated[
    str,
    Field(
        pattern=r"^[!-~]{1,512}$",
        description="The app's API secret; stored encrypted (or in Vault), never returned.",
    ),
]
BrokerUserId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9._@-]{1,64}$",
        description="The user's id at the broker (Kite user id, Upstox UCC, IB account code).",
    ),
]
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")]


class StrictModel(BaseModel):
    # Strict types too: "yes" or 1 must not switch live trading on.
    model_config = ConfigDict(extra="forbid", strict=True)


class BrokerAccountCreate(StrictModel):
    user_id: UserRef
    broker: BrokerName
    broker_user_id: BrokerUserId
    api_key: ApiKey | None = Field(
        default=None, description="Required for kite and upstox; IB's TWS API has none."
    )
    api_secret: ApiSecret | None = Field(
        default=None, description="Required for kite and upstox; IB's TWS API has none."
    )
    label: Label | None = None


class BrokerAccountUpdate(StrictModel):
    """Only the fields sent change. ``api_secret`` rotates the secret (a stored broker session
    ends with it); ``label: null`` clears the label."""

    label: Label | None = None
    broker_user_id: BrokerUserId | None = None
    api_key: ApiKey | None = None
    api_secret: ApiSecret | None = None
    live_enabled: bool | None = Field(
        default=None,
        description="Allow this account to trade live (still off while the platform is "
        "paper-only: QUANTDESK_PAPER_ONLY).",
    )


class BrokerAccountOut(BaseModel):
    id: int
    user_id: int
    broker: Literal["kite", "upstox", "ib"]
    broker_user_id: str
    label: str | None
    api_key_masked: str | None = Field(description="The API key's last 4 characters: ****abcd.")
    has_secret: bool
    secret_store: Literal["fernet", "vault"] | None = Field(
        description="Where the secret is kept: encrypted in the database, or in Vault."
    )
    live_enabled: bool = Field(description="An admin enabled live trading on this account.")
    live_allowed: bool = Field(
        description="Orders would go to the broker now: live_enabled and the platform is not "
        "paper-only."
    )
    created_at: datetime
    updated_at: datetime


class BrokerAccountPage(BaseModel):
    items: list[BrokerAccountOut]
    total: int
    paper_only: bool = Field(description="The platform-wide paper-only switch is on.")
