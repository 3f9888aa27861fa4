"""Guards: who may call (API keys and scopes), how often (rate limits) and how much (budgets).

Each guard answers before any work is done and raises the error that names its limit; the API
layer maps those errors to 401/403/429/402.
"""
