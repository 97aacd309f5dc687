"""The web UI's API types are generated from frontend/openapi.json: the snapshot must be the
live schema, so the UI and the API cannot drift silently. After an API change, regenerate it
(docs/ui.md, "API types") and then the TypeScript types (`npm run gen:api`)."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI

SNAPSHOT = Path(__file__).resolve().parents[3] / "frontend" / "openapi.json"


def test_the_ui_schema_snapshot_is_the_live_openapi_schema(app: FastAPI) -> None:
    live = app.openapi()
    snapshot = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    if snapshot != live:
        changed = sorted(
            set(live["paths"]) ^ set(snapshot["paths"])
            | {p for p in live["paths"] if snapshot["paths"].get(p) != live["paths"][p]}
        )
        raise AssertionError(
            "frontend/openapi.json is stale; regenerate it (docs/ui.md, 'API types') and run "
            f"`npm run gen:api`. Paths that differ: {changed[:10]}"
        )
