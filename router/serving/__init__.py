"""Serving: the one running service and what keeps it fast and observable.

`holder` builds a complete service from a config and a model and swaps it atomically on
reload; `service` runs one decision end to end; `loop` carries the traffic state that outlives
a reload (store, budget spend, the drift window, the learning state, exploration draws);
`batcher` shares one encoder call among concurrent /route calls; `prometheus` and `logs`
(JSON lines, the decision log line) say what happened; `threads` sets the thread plan.
"""
