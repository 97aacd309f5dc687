"""The built web UI is served at / with history-API fallback; unknown API paths stay API 404s."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import client_for, make_settings

from quantdesk.api import create_app


async def test_the_built_ui_is_served_with_fallback_but_api_paths_are_never_the_app(
    db_url: str, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><div id=root></div>")
    (dist / "assets" / "app-1234.js").write_text("console.log('qd')")
    (dist / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("not for you")
    app = create_app(make_settings(db_url, tmp_path, ui_dir=dist))
    async with app.router.lifespan_context(app), client_for(app) as client:
        for page in ("/", "/wallet", "/orders/abc"):
            r = await client.get(page)
            assert r.status_code == 200 and "id=root" in r.text, page
        assert (await client.get("/assets/app-1234.js")).text == "console.log('qd')"
        assert (await client.get("/favicon.svg")).text == "<svg/>"
        # No way out of the build directory.
        r = await client.get("/..%2Fsecret.txt")
        assert "not for you" not in r.text
        for api in ("/api/v1/nope", "/api/v2/orders", "/api"):
            r = await client.get(api)
            assert r.status_code == 404, api
            assert r.json()["error"]["code"] == "NOT_FOUND"
        assert (await client.get("/healthz")).status_code == 200
