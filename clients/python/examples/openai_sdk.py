"""Route, call with the OpenAI SDK, report. Needs a tier-router (TIER_ROUTER_URL, default
http://127.0.0.1:8000; TIER_ROUTER_API_KEY if it has keys) and an OpenAI-compatible endpoint
serving the routed models (OPENAI_API_KEY, and OPENAI_BASE_URL for a gateway such as the
LiteLLM proxy)."""

import os

from openai import OpenAI
from tier_router_client import RouterClient
from tier_router_client.openai import create

router = RouterClient(os.environ.get("TIER_ROUTER_URL", "http://127.0.0.1:8000"),
                      api_key=os.environ.get("TIER_ROUTER_API_KEY"), fail_open_model="gpt-4.1")
call = create(router, OpenAI(), messages=[{"role": "user", "content": "Say hello."}],
              run_id="run-7", role="greeter")
print(call.model_used, call.decision.reason, call.receipt and call.receipt.status,
      call.response.choices[0].message.content)
