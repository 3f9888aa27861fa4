"""The decision: from a call to per-tier predicted quality to one tier. Pure and light.

`features` turns a call into the text the scorer reads and a few cheap numbers (and says which
of them a model reads: `FeatureSpec`), `encoders` turn that text into a vector, `quality_head`
is the one served `scorer` (`logistic` holds the arithmetic fitted parts share), and
`artifact` saves and loads a fitted model directory beside the policy. `pipeline` is the whole
decision of a call over a `choice.TierTable`: `policy` (the knob, the rules, the budget,
exploration), `health_view` and `sticky` are its steps. Nothing here does I/O on the request
path or holds state that changes while serving; the service passes in snapshots of what does.
"""
