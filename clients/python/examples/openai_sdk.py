"""Route, call with the OpenAI SDK, report: run with a tier-router on 127.0.0.1:8000 and
OPENAI_API_KEY set (the routed models must be ones your OpenAI-compatible endpoint serves)."""

from openai import OpenAI
from tier_router_client import RouterClient
from tier_router_client.openai import create

router = RouterClient("http://127.0.0.1:8000", fail_open_model="gpt-4.1")
call = create(router, OpenAI(), messages=[{"role": "user", "content": "Say hello."}],
              run_id="run-7", role="greeter")
print(call.model_used, call.response.choices[0].message.content)
