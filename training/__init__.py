"""The offline pipeline: data -> labels -> embeddings -> selection -> fit -> evaluate -> card.

`ingest` (with `adapters` for the public data sets) reads data sets and trace files, `labels` makes one row
per prompt with tier labels, `embed_cache` caches embeddings on disk, `selection` picks a
head by leave-one-dataset-out, `train` and `evaluate` are the two entry points, and
`report`/`metrics`/`baselines`/`outputs`/`plots`/`card`/`ceiling` turn numbers into reports.
`loop/` holds the tools that close the loop with a running service.
"""
