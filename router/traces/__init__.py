"""The trace store and what flows through it: every decision, every outcome, spend, exports.

`store` queues decisions off the hot path and writes outcomes durably before /feedback
answers; `db` speaks SQLite and PostgreSQL; `rows` is the row format; `feedback` turns a
/feedback body into an outcome row; `export` writes the store out as TRACES.md records.
"""
