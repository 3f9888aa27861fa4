"""/docs and /redoc work offline: every script, style and icon they load is served by the app
itself (from the installed package), none from another host."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from router.api.app import create_app
from router.config import Settings
from tests.conftest import FakeEmbedder


def test_docs_pages_load_every_asset_from_the_service(settings: Settings) -> None:
    with TestClient(create_app(settings=settings,
                               embedder_factory=lambda cfg: FakeEmbedder())) as client:
        for page, needed in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
            r = client.get(page)
            assert r.status_code == 200, page
            urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", r.text)
            assert any(u.endswith(needed) for u in urls), (page, urls)
            assert not [u for u in urls if u.startswith(("http://", "https://", "//"))], urls
            for url in urls:
                asset = client.get(url)
                assert asset.status_code == 200 and len(asset.content) > 0, url
        swagger = client.get("/docs-assets/swagger-ui-bundle.js").text
        # Swagger UI 5 or later: 4 cannot render the OpenAPI 3.1 document FastAPI writes
        assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
        assert re.search(r'"5\.\d+\.\d+"', swagger)
        assert client.get("/docs/oauth2-redirect").status_code == 200
