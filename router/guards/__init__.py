"""Guards: who may call (API keys and scopes), how often and how much (requests and tokens per
minute), and how much it may cost (budgets over roles, keys, teams or the whole fleet).

Each guard answers before any work is done and raises the error that names its limit; the API
layer maps those errors to 401/403/429/402/422. What they count lives in `counters.Counters`:
this process's memory, or Redis for every replica (`shared`, `redis_state`).
"""
