"""`prices_from: litellm`: a tier's prices and context window from LiteLLM's local model map
instead of hand-typed numbers. A number in the config still wins; only unset fields are filled.

Prices (input, cached input, output) come from the tier's first model the map knows (its
preferred model, the one called first); the context window is the smallest among its models the
map knows, so every model the decision may fall back to within the tier can hold the call.
LiteLLM is imported only when asked for, with its packaged map (never fetched at run time).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

PRICE_FIELDS = {  # TierConfig field -> LiteLLM model-map key, USD per token
    "input_price_per_m": "input_cost_per_token",
    "cached_input_price_per_m": "cache_read_input_token_cost",
    "output_price_per_m": "output_cost_per_token",
}


def litellm_model_map() -> Mapping[str, Mapping[str, Any]]:
    """LiteLLM's packaged model map; a ValueError naming the cause when LiteLLM is missing."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch at import
    try:
        import litellm
    except ImportError as exc:
        raise ValueError("prices_from: litellm needs the litellm package, which is not "
                         f"installed ({exc}); pip install 'litellm>=1.92,<1.98', or give the "
                         "tiers' prices and context windows in the config") from None
    return litellm.model_cost


def entry(model_map: Mapping[str, Mapping[str, Any]], model: str) -> Mapping[str, Any] | None:
    """The map's entry for a model name as given, else for it under a provider prefix
    ('mistral/...'), the provider's own listing first (resellers list the same name too)."""
    if model in model_map:
        return model_map[model]
    found = [(k, v) for k, v in model_map.items() if k.rsplit("/", 1)[-1] == model]
    native = [v for k, v in found if v.get("litellm_provider") == k.split("/", 1)[0]]
    candidates = native or [v for _, v in found]
    return candidates[0] if candidates else None


def fill_tier(tier: Mapping[str, Any], model_map: Mapping[str, Mapping[str, Any]]) -> dict:
    """The tier's raw config with its unset prices and context window taken from the map."""
    out = dict(tier)
    known = [e for e in (entry(model_map, m) for m in tier.get("models") or []) if e is not None]
    for name, key in PRICE_FIELDS.items():
        if out.get(name) is None:
            price = next((e[key] for e in known if e.get(key) is not None), None)
            if price is not None:
                out[name] = round(float(price) * 1e6, 6)
    if out.get("context_window") is None:
        windows = [int(e["max_input_tokens"]) for e in known if e.get("max_input_tokens")]
        if windows:
            out["context_window"] = min(windows)
    missing = [n for n in ("input_price_per_m", "output_price_per_m", "context_window")
               if out.get(n) is None]
    if missing:
        raise ValueError(f"tier '{tier.get('name')}': LiteLLM's model map has no "
                         f"{', '.join(missing)} for any of its models {tier.get('models')}; "
                         "give them in the config")
    return out


def fill_prices(raw: Mapping[str, Any]) -> dict:
    """The raw config with every tier filled, when it says `prices_from: litellm`."""
    if raw.get("prices_from") != "litellm" or not isinstance(raw.get("tiers"), list):
        return dict(raw)
    model_map = litellm_model_map()
    tiers = [fill_tier(t, model_map) if isinstance(t, Mapping) else t for t in raw["tiers"]]
    return {**raw, "tiers": tiers}
