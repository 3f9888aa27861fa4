"""Route, call through LiteLLM, report: run with a tier-router on 127.0.0.1:8000 and your
provider keys in the environment (or add mock_response="..." to try it offline)."""

from tier_router_client import RouterClient
from tier_router_client.litellm import completion

router = RouterClient("http://127.0.0.1:8000", fail_open_model="gpt-4.1")
call = completion(router, messages=[{"role": "user", "content": "Summarise: the parcel is late."}],
                  run_id="run-7", role="support", step="1")
print(call.model_used, call.decision.reason, call.response.choices[0].message.content)
