"""Parameter types shared by the routers."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator

# PostgreSQL refuses NUL in text: a NUL reaching a query would be a 500, not a 4xx.
NO_NUL = r"^[^\x00]*$"

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_only(value: Any) -> Any:
    # Pydantic would also read "0.5" or "1700000000" as a Unix timestamp; the API promises
    # RFC 3339 date-times only.
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("expected an RFC 3339 date-time, e.g. 2026-01-02T09:15:00+05:30")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]
