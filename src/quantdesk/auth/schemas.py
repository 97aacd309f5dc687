"""Request and response shapes for auth and user management."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from quantdesk.auth.roles import Role

Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[a-zA-Z0-9_.-]{3,64}$"),
]
Password = Annotated[str, Field(min_length=1, max_length=256)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(StrictModel):
    # No NUL: PostgreSQL refuses it in text, which made the lookup a 500.
    username: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00]*$")]
    password: Password
    refresh_token_in_body: bool = Field(
        default=True,
        description="false: the refresh token is delivered only in the HttpOnly `qd_refresh` "
        "cookie and the body's `refresh_token` is null (the web UI's mode: page scripts never "
        "see it). Default true: in the body as well, for scripts.",
    )


class RefreshRequest(StrictModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str | None = Field(
        description="The new refresh token; null when it went only into the `qd_refresh` "
        "cookie (a login with refresh_token_in_body=false, or a refresh by cookie)."
    )
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime


NewPassword = Annotated[
    str,
    Field(
        min_length=10,
        max_length=72,
        description="10+ characters, at most 72 bytes (bcrypt's limit), 4+ distinct characters, "
        "not a common password, not containing the username",
    ),
]


class UserCreate(StrictModel):
    username: Username
    password: NewPassword
    role: Role


class UserUpdate(StrictModel):
    role: Role | None = None
    is_active: bool | None = None
    password: NewPassword | None = None


class UserPage(BaseModel):
    items: list[UserOut]
    total: int
