"""Closing the loop with a running service: retrain from its traces, compare, promote.

`retrain` fits a candidate from the trace store, `compare` measures it against the serving
model (off-policy on logged calls via `offpolicy`, and on public test splits), `promote`
installs it only if the gates pass.
"""
