"""Write every example of the README and the docs from a real run of the current code.

    .venv/bin/python docs/render.py           # rewrite the generated blocks in place (~15 s)
    .venv/bin/python docs/render.py --check   # exit 1 naming each block that differs

A generated block in a Markdown file sits between two comments,

    <!-- generated: NAME -->
    ...
    <!-- /generated -->

and everything between them is replaced by what `examples()` made under NAME. The examples
come from the service itself, in process (FastAPI's TestClient over the app `tier-router
serve` runs), with the shipped model and the shipped config, changed only where a
reproducible example needs it: the trace store in a temporary folder and `exploration_seed:
0`, so exploration draws the same way every time. Values that differ on every run (decision
ids, times) are shown as placeholders; everything else is printed as the service answered.
tests/docs/test_examples.py runs `--check`, so an example can never drift from the code.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.S)
SEED = 0
ID = "(a new id on every call)"
TIME = "(the time of the call, ISO 8601)"
CT = "-H 'Content-Type: application/json'"

AGENT_CALL = {
    "messages": [
        {"role": "system", "content": "You are a support agent for a logistics company."},
        {"role": "user", "content": "Shipment 4411 is late. Find out why and tell the customer."},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": "lookup", "arguments": "{\"id\": \"4411\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "held at customs; invoice missing"},
    ],
    "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
    "task": "synthesize", "run_id": "run-7", "role": "support", "step": "4",
}
# An OpenAI SDK body as it is; a puzzle the shipped model finds well within medium's reach.
DROP_IN_CALL = {
    "model": "gpt-4.1", "temperature": 0.2, "max_tokens": 200,
    "messages": [{"role": "user", "content": "A bat and a ball cost $1.10 in total. The bat "
                  "costs $1.00 more than the ball. How much does the ball cost?"}],
    "run_id": "run-7", "role": "support", "step": "5",
}


def shipped_config(work: Path) -> Path:
    """The shipped config, with its store in `work` and exploration seeded."""
    raw = yaml.safe_load((ROOT / "router" / "default_config.yaml").read_text("utf-8"))
    raw["model_dir"] = str(ROOT / "models" / "default")
    raw.setdefault("store", {})["url"] = f"sqlite:///{work / 'traces.db'}"
    raw["exploration_seed"] = SEED
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), "utf-8")
    return path


def examples() -> dict[str, str]:
    """Every generated block's text, by name, from one run of the service and the CLI."""
    from fastapi.testclient import TestClient

    from router.api.app import create_app

    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        config = shipped_config(Path(tmp))
        with TestClient(create_app(config)) as client:
            routed, agent, drop_in = _route_examples(client)
            out.update(routed)
            out.update(_feedback_examples(client, agent, drop_in))
            ledger = client.get("/runs/run-7").json()
            out["runs-ledger"] = _json(_masked(ledger))
        out.update(_cli_examples(config))
    out["config-reference"] = config_reference()
    return out


def _route_examples(client: Any) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
    out: dict[str, str] = {}
    agent = _ok(client.post("/route", json=AGENT_CALL), "the agent call")
    out["route-agent-request"] = _curl("/route", AGENT_CALL)
    out["route-agent-answer"] = _json(_masked(agent))
    out["route-agent-why"] = why(agent, client.get("/tiers").json())
    drop_in = _ok(client.post("/route", json=DROP_IN_CALL), "the drop-in call")
    out["route-drop-in-request"] = _curl("/route", DROP_IN_CALL)
    out["route-drop-in-answer"] = _json(_masked(drop_in))
    typo = client.post("/route", json={"prompt": "Say hello.", "max_cost_uds": 0.01})
    out["route-typo"] = _exchange("/route", {"prompt": "Say hello.", "max_cost_uds": 0.01}, typo)
    return out, agent, drop_in


def _feedback_examples(client: Any, agent: dict[str, Any],
                       drop_in: dict[str, Any]) -> dict[str, str]:
    shown = {"decision_id": "…", "success": True, "model_used": agent["model"],
             "tokens_in": 812, "tokens_out": 140, "latency_ms": 930}
    stored = client.post("/feedback", json={**shown, "decision_id": agent["decision_id"]})
    if stored.status_code != 201:
        raise SystemExit(f"feedback example: {stored.status_code} {stored.text}")
    typo = {"decision_id": "…", "sucess": True}
    answer = client.post("/feedback", json={**typo, "decision_id": drop_in["decision_id"]})
    return {"feedback-request": _curl("/feedback", shown),
            "feedback-answer": f"HTTP {stored.status_code}\n{_json(_masked(stored.json()))}",
            "feedback-typo": _exchange("/feedback", typo, answer)}


def _cli_examples(config: Path) -> dict[str, str]:
    from router.cli.main import main

    def run(argv: list[str]) -> str:
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse
                code = int(exc.code or 0)
        text = (stdout.getvalue() + stderr.getvalue()).rstrip("\n")
        return f"$ tier-router {' '.join(argv)}\n{text}\n(exit {code})"

    ledger = run(["runs", "run-7", "--config", str(config)])
    ledger = ledger.replace(str(config), "my.yaml")
    ledger = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "YYYY-MM-DD hh:mm:ss", ledger)
    ledger = re.sub(r"decision [0-9a-f]{32}", "decision …", ledger)
    mistakes = "\n".join(run(argv) for argv in (
        ["train", "--data-dir", "/nonexistent", "--out", "models/mine"],
        ["export", "--out", "x.csv"],
        ["replay", "--data-dir", ".", "--source", "routerbenhc"],
    ))
    return {"cli-runs-ledger": ledger, "cli-mistakes": mistakes}


def why(decision: dict[str, Any], tiers: Any) -> str:
    """One sentence on how the answer follows (the learned map's rule, in words)."""
    scores: dict[str, float] = decision["scores"]
    target = _quality_target()
    line = f"Scores: {', '.join(f'{t} {s:.3f}' for t, s in scores.items())}. "
    detail = decision.get("detail") or ""
    if detail.startswith("no category has"):
        line += (f"No category of this call has enough outcomes yet (a new deployment), so at "
                 f"the default `quality_target` {target:g} the learned map sends it to the "
                 "strongest tier; savings come as its outcomes show a cheaper tier holds up. ")
    elif detail.startswith("category"):
        line += (f"The learned map's {detail.split(':', 1)[0]} decided: the cheapest tier "
                 f"whose lower bound of quality relative to the strongest reaches {target:g}. ")
    line += (f"The answer: `{decision['tier']}` (reason `{decision['reason']}`), model "
             f"`{decision['model']}`, confidence {decision.get('confidence')}.")
    return line


def _quality_target() -> float:
    from router.config import load_settings

    return float(load_settings(None).quality_target)


# What a key does, for the keys whose config model carries no description of its own.
KEY_DOCS = {
    "model_dir": "The model directory to serve (relative to the config file).",
    "fail_open": "When the model cannot load or predict: answer `safe_tier` with reason "
                 "`degraded` (true) or 503 (false).",
    "safe_tier": "The tier a degraded decision goes to.",
    "expected_output_tokens": "The output estimate of a call that gives no `max_tokens`.",
    "tiers": "The tiers, cheapest first (see Tiers).",
    "tiers[].name": "The tier's name, as answers and requests give it.",
    "tiers[].capabilities": "What its models can take: tools, json, vision, audio, "
                            "long_context; a call needing one skips tiers without it.",
    "task_rules": "`task` -> a rule: `{min_tier: large}` is a floor, `{tier: small}` fixes it.",
    "task_rules[].min_tier": "The cheapest tier this task may get.",
    "task_rules[].tier": "The one tier this task gets.",
    "embedder.backend": "onnx-int8 (serving default), onnx (fp32) or torch (fp32 reference).",
    "embedder.threads": "Threads of the encoder.",
    "embedder.max_seq_length": "Tokens the encoder reads of the routed text.",
    "embedder.batch_size": "Most /route calls encoded in one batch.",
    "embedder.batch_wait_ms": "How long a lone call waits for others to batch with.",
    "embedder.cache_size": "Entries of the embedding LRU (0: none).",
    "limits.max_body_bytes": "Largest request body; over it: 422 naming `body`.",
    "limits.max_messages": "Most messages in a call.",
    "limits.max_content_chars": "Most characters in one message's content.",
    "limits.max_tools": "Most tool schemas in a call.",
    "limits.max_batch": "Most requests in one /route/batch.",
    "limits.request_timeout_s": "A request running longer gets 408 naming this limit.",
    "store.url": "The trace store: sqlite:///file.db or postgresql://...",
    "store.prompt_storage": "What is kept of the prompt: full, hash or none.",
    "store.queue_size": "Decisions waiting for the background writer, at most.",
    "store.enabled": "Record decisions and accept feedback at all.",
    "budgets": "Spend limits per period over roles, keys or the fleet (see Gateway features).",
    "budgets[].name": "The budget's name, as a 402 names it.",
    "budgets[].limit_usd": "The most the group may spend in one period (USD).",
    "budgets[].period": "hour, day, week or month (UTC).",
    "exploration_rate": "Share of calls that may go to another allowed tier, to learn.",
    "exploration_seed": "Seed of the exploration draws (unset: a fresh one each start).",
    "drift_window_s": "Window of the drift gauges in /metrics.",
    "promotion.holdout_fraction": "Share of the newest logged calls `retrain` holds out.",
    "promotion.min_holdout": "Fewest held-out calls `promote` compares on.",
    "promotion.quality_margin": "How much worse a candidate may be and still be promoted.",
    "learning.enabled": "Adapt the scores to this deployment's outcomes.",
    "health.enabled": "Circuit breaking per deployed model from /feedback errors.",
    "auth.keys": "The API keys (see Security); none: the service is open, loopback only.",
    "auth.keys[].scopes": "What the key may call (see Security).",
    "host": "Address `serve` binds (default loopback).",
    "port": "Port `serve` listens on.",
}


def config_reference() -> str:
    """Every config key with its type, default and description, from the Settings model."""
    from pydantic import BaseModel

    from router.config import Settings

    rows = ["| key | type | default | what it does |", "|---|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            kind = field.annotation
            inner = _model_of(kind)
            if inner is not None and not _is_list(kind):
                walk(inner, f"{key}.")
                continue
            default = "required" if field.is_required() else _default(field)
            text = (field.description or KEY_DOCS.get(key, "")).replace("|", "\\|")
            text = text.replace("\n", " ")
            rows.append(f"| `{key}` | {_type(kind)} | {default} | {text} |")
            if inner is not None:  # a list of sections (tiers, budgets): their keys too
                walk(inner, f"{key}[].")

    walk(Settings, "")
    return "\n".join(rows)


def _model_of(kind: Any) -> Any:
    from pydantic import BaseModel

    for candidate in (kind, *getattr(kind, "__args__", ())):
        for inner in (candidate, *getattr(candidate, "__args__", ())):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _is_list(kind: Any) -> bool:
    return "list[" in str(kind) or "dict[" in str(kind)


def _type(kind: Any) -> str:
    text = str(kind).replace("typing.", "").replace("NoneType", "None")
    text = re.sub(r"<class '([^']+)'>", r"\1", text)
    text = re.sub(r"router\.[a-z_.]+\.", "", text)
    return f"`{text}`".replace("|", "\\|")


def _default(field: Any) -> str:
    value = field.get_default(call_default_factory=True)
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    return f"`{json.dumps(value, default=str)}`".replace("|", "\\|")


def _ok(response: Any, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise SystemExit(f"{what}: {response.status_code} {response.text}")
    answer = response.json()
    if answer.get("reason") == "explore":
        raise SystemExit(f"{what} was explored at exploration_seed {SEED}: the example would "
                         "show a random draw; change SEED or the example")
    return answer


def _masked(value: Any) -> Any:
    """Ids and times as placeholders (they differ on every run); everything else as answered."""
    if isinstance(value, dict):
        return {k: (ID if k in ("decision_id", "feedback_id") and v else
                    TIME if k.endswith("_at") and isinstance(v, str) else _masked(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _json(value: Any, indent: str = "") -> str:
    """JSON indented by two, with any list or object that fits in 96 characters on one line."""
    flat = json.dumps(value, ensure_ascii=False)
    if len(indent) + len(flat) <= 96 or not isinstance(value, dict | list) or not value:
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    items = [f"{inner}{_json(v, inner)}" for v in value]
    return "[\n" + ",\n".join(items) + f"\n{indent}]"


def _curl(path: str, body: dict[str, Any]) -> str:
    text = _json(body)
    assert "'" not in text, "a single quote would end the shell string"
    return f"curl -s localhost:8000{path} {CT} -d '{text}'"


def _exchange(path: str, body: dict[str, Any], response: Any) -> str:
    return (f"{_curl(path, body)}\n# HTTP {response.status_code}\n"
            + "\n".join(f"# {line}" for line in _json(response.json()).splitlines()))


def fence(name: str, text: str) -> str:
    """How a block is written: prose for `*-why` and tables, else a fenced code block."""
    if name.endswith("-why") or name == "config-reference":
        return text + "\n"
    lang = "json" if text.lstrip().startswith(("{", "[")) else (
        "bash" if text.startswith("curl") else "text")
    return f"```{lang}\n{text}\n```\n"


def render(page: str, made: dict[str, str]) -> str:
    def block(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in made:
            raise SystemExit(f"unknown generated block {name!r} (made: {sorted(made)})")
        return f"{match[1]}{fence(name, made[name])}{match[4]}"

    return BLOCK.sub(block, page)


def pages() -> Iterator[Path]:
    return iter(p for p in PAGES if p.exists())


def main(argv: list[str] | None = None, write: Callable[[str], Any] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 naming each page whose blocks differ")
    args = parser.parse_args(argv)
    made = examples()
    stale = []
    for path in pages():
        text = path.read_text("utf-8")
        new = render(text, made)
        if new != text:
            stale.append(path.relative_to(ROOT).as_posix())
            if not args.check:
                path.write_text(new, "utf-8")
    verb = "differ from the code's answers" if args.check else "rewritten"
    write(f"{verb}: {', '.join(stale)}" if stale else "every generated block is up to date")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
