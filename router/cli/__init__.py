"""The `tier-router` command line: thin over the functions it calls, parsed only in `main`.

`main` has serve, train, evaluate, card and hash-key; `loop` the closed-loop commands (spend,
export, retrain, promote). Training code is imported lazily, inside the commands that run it.
"""
