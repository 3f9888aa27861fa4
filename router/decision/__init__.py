"""The decision: from a call to per-tier predicted quality to one tier. Pure and light.

`features` turns a call into the text the classifier reads and a few cheap numbers,
`encoders` turn that text into a vector, `classifier` and `fast_head` score each tier,
`artifact` saves and loads a fitted model directory, and `policy` applies the knob, the rules
and the budget to the scores. Nothing here does I/O on the request path or holds state that
changes while serving; the service passes in snapshots of what does.
"""
