"""Route, call through LiteLLM, report. Needs a tier-router (TIER_ROUTER_URL, default
http://127.0.0.1:8000; TIER_ROUTER_API_KEY if it has keys) and your provider keys;
MOCK_RESPONSE="..." answers every call with LiteLLM's mock instead, offline."""

import os

from tier_router_client import RouterClient
from tier_router_client.litellm import completion

mock = {"mock_response": os.environ["MOCK_RESPONSE"]} if "MOCK_RESPONSE" in os.environ else {}
router = RouterClient(os.environ.get("TIER_ROUTER_URL", "http://127.0.0.1:8000"),
                      api_key=os.environ.get("TIER_ROUTER_API_KEY"), fail_open_model="gpt-4.1")
call = completion(router, messages=[{"role": "user", "content": "Summarise: the parcel is late."}],
                  run_id="run-7", role="support", step="1", **mock)
print(call.model_used, call.decision.reason, call.receipt and call.receipt.status,
      call.response.choices[0].message.content)
