"""The `tier-router` command line: thin over the functions it calls, parsed only in `main`.

`main` has serve, train, evaluate, card and hash-key; `loop` the closed-loop commands (spend,
export, retrain, promote, learning, replay); `learned` the map; `args` the argument types and
the one error boundary (a user's mistake is one line on stderr and a non-zero exit, never a
traceback).
Each command loads the config, calls one typed function
(`training.train.train`, `training.evaluate.evaluate`, `training.traffic.retrain.retrain`, ...)
and prints what it returns. Training code is imported lazily, inside the commands that run it.
"""
