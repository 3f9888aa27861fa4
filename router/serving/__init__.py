"""Serving: the one running service and what keeps it fast and observable.

`holder` builds a complete service from a config and a model and swaps it atomically on
reload; `service` runs one decision end to end; `loop` carries the traffic state that outlives
a reload (store, budgets, drift); `batcher` shares one encoder call among concurrent /route
calls; `prometheus`, `logs` and `drift` say what happened; `threads` sets the thread plan.
"""
