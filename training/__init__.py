"""The offline pipeline: data -> labels -> embeddings -> selection -> fit -> evaluate -> card.

`ingest` reads trace files and (through `adapters`) the public data sets, `labels` makes one
row per prompt with tier labels, `embed_cache` embeds it (cached on disk) and adds the cheap
features, `selection` picks a head by leave-one-dataset-out, `train` and `evaluate` are the two
entry points (typed functions; `router.cli` is the thin command line over them), `scoring`
runs a model through the service's own policy, and `report`/`metrics`/`baselines`/`outputs`/
`plots`/`card`/`ceiling` turn numbers into reports. `loop/` holds the tools that close the loop
with a running service.
"""
