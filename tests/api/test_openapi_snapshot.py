"""The OpenAPI document is a contract: it only changes on purpose.

`openapi_snapshot.json` is the document the shipped config produces. A change to the API shows
up here as a diff; after a deliberate change, regenerate it with
``python -m tests.api.test_openapi_snapshot`` and commit the new file with the change.
"""

from __future__ import annotations

import json
from pathlib import Path

from router.api.app import create_app
from router.config import load_settings

SNAPSHOT = Path(__file__).with_name("openapi_snapshot.json")


def current_document() -> dict:
    return create_app(settings=load_settings(None)).openapi()


def test_openapi_document_matches_the_committed_snapshot() -> None:
    committed = json.loads(SNAPSHOT.read_text())
    current = current_document()
    changed = sorted(
        path for path in set(committed["paths"]) | set(current["paths"])
        if committed["paths"].get(path) != current["paths"].get(path)
    )
    assert not changed, f"paths changed: {changed}"
    assert current == committed


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(current_document(), indent=1, sort_keys=True) + "\n")
