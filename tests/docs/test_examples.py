"""The README and the docs show what the code answers: `docs/render.py --check` regenerates
every example from a real run (the shipped model, in process, ~10 s) and fails on a difference.
The cheap checks (every curl sends Content-Type; CI runs the README's command) run beside it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def render_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_render", ROOT / "docs" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_example_is_what_the_code_answers_now() -> None:
    said: list[str] = []
    code = render_module().main(["--check"], write=said.append)
    assert code == 0, f"{said[0]}: run `.venv/bin/python docs/render.py` and commit the result"
    assert said == ["every generated block is up to date"]


def test_a_block_is_rewritten_between_its_markers_and_an_unknown_one_refused() -> None:
    render = render_module()
    page = "a\n<!-- generated: x -->\nold\n<!-- /generated -->\nb\n"
    assert render.render(page, {"x": '{"k": 1}'}) == (
        "a\n<!-- generated: x -->\n```json\n{\"k\": 1}\n```\n<!-- /generated -->\nb\n")
    try:
        render.render(page, {})
    except SystemExit as exc:
        assert "unknown generated block 'x'" in str(exc)
    else:
        raise AssertionError("an unknown block passed")


def test_every_curl_that_posts_sends_a_json_content_type() -> None:
    for page in PAGES:
        for command in re.findall(r"curl [^\n]*(?:\\\n[^\n]*)*", page.read_text("utf-8")):
            if " -d " in command or "--data" in command:
                assert "-H 'Content-Type: application/json'" in command, (page.name, command)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    commands = re.findall(r"^python3\.11 -m venv \.venv && .*'\.\[test\]'.*$", readme, re.M)
    assert len(commands) == 1, commands
    ci = (ROOT / ".ci" / "run").read_text("utf-8").strip().splitlines()[-1]
    assert ci == commands[0]
    assert ci.endswith("&& .venv/bin/mkdocs build --strict")
    docs_command = (ROOT / "docs" / "contributing.md").read_text("utf-8")
    assert commands[0] in docs_command
