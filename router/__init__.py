"""tier-router: before each LLM call, the cheapest model tier that will still answer it well.

The folders are the architecture, and imports run one way (checked by import-linter in CI):
`api` (HTTP) -> `serving` (the one running service) -> `guards` (who may call, how often, how
much) and `traces` (what was decided and what came of it) -> `decision` (what a /route
computes: pure and light). `cli` sits on top and alone reaches `training`, lazily. `config`,
`errors` and `schemas` are shared by all of them.
"""
