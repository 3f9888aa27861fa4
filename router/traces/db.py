"""The two SQL databases the trace store speaks: SQLite (default) and PostgreSQL (psycopg 3).

Everything above this module writes portable SQL with ``?`` placeholders and
``INSERT ... ON CONFLICT DO NOTHING``; `Database.sql` turns the placeholders into ``%s`` for
PostgreSQL. Two kinds of connection:

* ``writer``: the background writer's. SQLite in WAL with ``synchronous=NORMAL``: a committed
  batch survives a process crash (SIGKILL); only an OS crash or power loss can take back the
  last commits.
* ``durable``: feedback and synchronous reads. SQLite with ``synchronous=FULL``, so a commit is
  on disk before the HTTP answer; PostgreSQL's default ``synchronous_commit=on`` is the same.
* ``reader``: the reports' (``GET /runs``, ``/spend``): read-only, its own lock, so a long report
  never holds the connection feedback commits on (SQLite WAL readers do not block the writers).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from router.errors import ConfigError, StoreError

# 2: decisions.api_key (the name of the key a call came with), added to version-1 stores.
# 3: decisions.embedding, embedder, feature_version (what the classifier saw, for learning
#    without the text) and prior_scores (the model's scores before online adaptation).
# 4: outcomes.quality nullable (outcome-only feedback: spend and health, never learning) and
#    decisions.shadow (a decision the caller asked for but did not follow) and requested_model
#    (the request's own `model`: in shadow mode the one it followed).
# 5: outcomes.api_key (the key that posted an outcome without a decision: it counts toward
#    that key's own budgets only).
# 6: learning_evidence, the learned map's per-(key, category, tier) sums (router.traces.evidence);
#    an older store's are summed from its outcomes once, at the first start.
# 7: the escalations table (which decision each was escalated to, why; written before the
#    escalated decision, so a decision is escalated from once, across restarts and replicas),
#    the verifications table (a cheap answer's confidence and check result, POST /verify) and
#    decisions.max_cost_usd (the call's own cap, which its escalation keeps).
# 8: run_outcomes keyed by (api_key, run_id): two keys may use one run id, and one key's outcome
#    is never another's (a version-7 outcome is kept for each key whose calls carried its run id;
#    reported_by keeps the key that posted it), and decisions.map_revision (the learned map's
#    revision that decided the call, NULL without learning) so reports group runs by it.
SCHEMA_VERSION = 8

# Columns added after version 1, by the version that added them: `create_schema` adds what an
# older store lacks, in place, keeping every row. {blob} is the dialect's bytes type.
ADDED_COLUMNS = (
    (2, "api_key", "TEXT"),
    (3, "embedding", "{blob}"),
    (3, "embedder", "TEXT"),
    (3, "feature_version", "TEXT"),
    (3, "prior_scores", "TEXT"),
    (4, "shadow", "INTEGER NOT NULL DEFAULT 0"),
    (4, "requested_model", "TEXT"),
    (7, "max_cost_usd", "DOUBLE PRECISION"),
    (8, "map_revision", "INTEGER"),
)

_DECISIONS = """
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    tier TEXT NOT NULL,
    model TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT,
    scores TEXT NOT NULL,
    features TEXT NOT NULL,
    quality_target DOUBLE PRECISION,
    estimated_cost_usd DOUBLE PRECISION NOT NULL,
    tokens_in INTEGER NOT NULL,
    task TEXT,
    run_id TEXT,
    role TEXT,
    step TEXT,
    user_id TEXT,
    router_version TEXT NOT NULL,
    propensity DOUBLE PRECISION NOT NULL,
    prompt_hash TEXT,
    prompt TEXT,
    messages TEXT,
    api_key TEXT,
    embedding {blob},
    embedder TEXT,
    feature_version TEXT,
    prior_scores TEXT,
    shadow INTEGER NOT NULL DEFAULT 0,
    requested_model TEXT,
    max_cost_usd DOUBLE PRECISION,
    map_revision INTEGER
)"""

_OUTCOMES = """
CREATE TABLE IF NOT EXISTS outcomes (
    feedback_id TEXT PRIMARY KEY,
    decision_id TEXT,
    received_at DOUBLE PRECISION NOT NULL,
    body_sha256 TEXT NOT NULL,
    model_used TEXT,
    tier TEXT,
    quality DOUBLE PRECISION,
    cost_usd DOUBLE PRECISION,
    cost_estimated INTEGER NOT NULL,
    tokens_in INTEGER,
    tokens_out INTEGER,
    latency_ms DOUBLE PRECISION,
    error TEXT,
    fallback_used INTEGER NOT NULL,
    task TEXT,
    run_id TEXT,
    role TEXT,
    step TEXT,
    user_id TEXT,
    propensity DOUBLE PRECISION,
    source TEXT,
    prompt_hash TEXT,
    prompt TEXT,
    messages TEXT,
    extra TEXT,
    api_key TEXT
)"""

# One row per escalation, keyed by the decision escalated from: the insert is the claim.
_ESCALATIONS = """
CREATE TABLE IF NOT EXISTS escalations (
    from_decision_id TEXT PRIMARY KEY,
    to_decision_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    attempt INTEGER NOT NULL,
    from_tier TEXT NOT NULL,
    to_tier TEXT,
    reason TEXT NOT NULL,
    logprob_mean DOUBLE PRECISION,
    detail TEXT,
    api_key TEXT,
    run_id TEXT
)"""

# One row per verified answer: its confidence, whether its checks passed (NULL: none sent).
_VERIFICATIONS = """
CREATE TABLE IF NOT EXISTS verifications (
    decision_id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    category TEXT NOT NULL,
    logprob_mean DOUBLE PRECISION NOT NULL,
    passed INTEGER,
    action TEXT NOT NULL
)"""

_INDEXES = (
    "CREATE INDEX IF NOT EXISTS decisions_created ON decisions (created_at)",
    "CREATE INDEX IF NOT EXISTS decisions_role ON decisions (role, created_at)",
    "CREATE INDEX IF NOT EXISTS decisions_run ON decisions (run_id, created_at)",
    "CREATE INDEX IF NOT EXISTS outcomes_decision ON outcomes (decision_id)",
    "CREATE INDEX IF NOT EXISTS outcomes_received ON outcomes (received_at)",
    "CREATE INDEX IF NOT EXISTS escalations_to ON escalations (to_decision_id)",
    "CREATE INDEX IF NOT EXISTS verifications_created ON verifications (created_at)",
)

_EVIDENCE = """
CREATE TABLE IF NOT EXISTS learning_evidence (
    api_key TEXT NOT NULL,
    category TEXT NOT NULL,
    tier TEXT NOT NULL,
    w DOUBLE PRECISION NOT NULL,
    wy DOUBLE PRECISION NOT NULL,
    w2 DOUBLE PRECISION NOT NULL,
    n DOUBLE PRECISION NOT NULL,
    y DOUBLE PRECISION NOT NULL,
    p DOUBLE PRECISION NOT NULL,
    s DOUBLE PRECISION NOT NULL,
    sn DOUBLE PRECISION NOT NULL,
    total DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (api_key, category, tier)
)"""

# Indexes on columns a migration may add: made after it (one key's live runs, GET /runs).
_LATE_INDEXES = ("CREATE INDEX IF NOT EXISTS decisions_key ON decisions (api_key, created_at)",)

# A run's final outcome (POST /runs/{run_id}/outcome), one per (the run's key, run id): api_key is
# the name of the key whose calls made the run ('' for calls without a key), reported_by the key
# that posted it (the run's own, or an admin's).
_RUN_OUTCOMES = """
CREATE TABLE IF NOT EXISTS run_outcomes (
    api_key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    reported_by TEXT,
    success INTEGER,
    quality DOUBLE PRECISION,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (api_key, run_id)
)"""
# A version-7 outcome (keyed by run_id alone, api_key its reporter) for every key whose calls
# carried the run id, else for its reporter: what each key saw before, it still sees.
_RUN_OUTCOMES_FROM_V7 = """
INSERT INTO run_outcomes (api_key, run_id, reported_by, success, quality, received_at)
SELECT COALESCE(k.api_key, COALESCE(r.api_key, '')), r.run_id, r.api_key, r.success, r.quality,
       r.received_at
FROM run_outcomes_v7 r
LEFT JOIN (SELECT DISTINCT COALESCE(api_key, '') AS api_key, run_id FROM decisions
           WHERE run_id IS NOT NULL) k ON k.run_id = r.run_id"""

# Which decisions' answers were checked (router/traces/checks.py): additive, like run_outcomes.
_CHECK_RESULTS = """
CREATE TABLE IF NOT EXISTS check_results (
    decision_id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    tier TEXT,
    passed INTEGER NOT NULL,
    labelled INTEGER NOT NULL
)"""

_META = "CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"

# One row per call: a decision (with its outcome's real cost when one came back), or an outcome
# posted without a decision. `est` is 1 where the cost is an estimate. A shadow decision's call
# is the caller's own model's (its estimate is that model's, see RouteDecision.spend_estimate_usd).
# Two parameters: the calls since when (epoch seconds), once per branch (each branch's index).
CALLS_SQL = """
    SELECT d.role AS role, d.run_id AS run_id, d.step AS step, d.user_id AS user_id,
           d.api_key AS api_key, 1 AS routed,
           COALESCE(o.tier, CASE WHEN d.shadow = 1 THEN NULL ELSE d.tier END) AS tier,
           COALESCE(o.model_used, CASE WHEN d.shadow = 1 THEN d.requested_model
                                       ELSE d.model END) AS model,
           COALESCE(o.cost_usd, d.estimated_cost_usd) AS cost,
           CASE WHEN o.cost_usd IS NULL THEN 1 ELSE o.cost_estimated END AS est,
           d.created_at AS t
    FROM decisions d LEFT JOIN outcomes o ON o.decision_id = d.decision_id
    WHERE d.created_at >= ?
    UNION ALL
    SELECT o.role, o.run_id, o.step, o.user_id, o.api_key, 0, o.tier, o.model_used,
           COALESCE(o.cost_usd, 0),
           CASE WHEN o.cost_usd IS NULL THEN 1 ELSE o.cost_estimated END, o.received_at
    FROM outcomes o WHERE o.decision_id IS NULL AND o.received_at >= ?"""

# What the learned map sums from an older store (router.traces.evidence): routed, labelled outcomes.
LEARNING_ROWS_SQL = """
    SELECT o.feedback_id, o.tier, o.quality, o.received_at, d.reason, d.propensity,
           d.prior_scores, d.embedding, d.router_version, d.api_key, d.role, d.task, d.step
    FROM outcomes o JOIN decisions d ON d.decision_id = o.decision_id
    WHERE o.received_at > ? AND d.reason <> 'degraded' AND o.quality IS NOT NULL
    ORDER BY o.received_at DESC, o.feedback_id DESC LIMIT ?"""
LEARNED_COUNT_SQL = """
    SELECT COUNT(*) AS n FROM outcomes o JOIN decisions d ON d.decision_id = o.decision_id
    WHERE o.received_at > ? AND d.reason <> 'degraded' AND o.quality IS NOT NULL"""

# Shadow decisions and their outcomes, if any (router.traces.shadow: what following would save).
SHADOW_SQL = """
    SELECT d.tier, d.scores, d.tokens_in AS estimated_tokens_in, d.estimated_cost_usd,
           o.feedback_id, o.tier AS followed_tier, o.cost_usd, o.tokens_in, o.tokens_out,
           o.quality
    FROM decisions d LEFT JOIN outcomes o ON o.decision_id = d.decision_id
    WHERE d.shadow = 1 AND d.created_at >= ?"""

# Every decision and its outcome, if any (export --format audit); the caller adds WHERE.
AUDIT_SQL = """
    SELECT d.decision_id, d.created_at, d.tier, d.model, d.reason, d.detail, d.scores,
           d.prior_scores, d.quality_target, d.estimated_cost_usd, d.tokens_in, d.task,
           d.run_id, d.role, d.step, d.user_id, d.api_key, d.router_version, d.propensity,
           d.prompt_hash, d.prompt, d.messages, o.received_at, o.model_used,
           o.tier AS outcome_tier, o.quality, o.cost_usd, o.cost_estimated,
           o.tokens_in AS outcome_tokens_in, o.tokens_out, o.latency_ms, o.error,
           o.fallback_used
    FROM decisions d LEFT JOIN outcomes o ON o.decision_id = d.decision_id"""


def insert_sql(table: str, columns: tuple[str, ...], key: str) -> str:
    """An idempotent insert: a row whose `key` is already stored is left as it is."""
    marks = ", ".join("?" for _ in columns)
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({key}) DO NOTHING")


JOINED_SQL = """
    SELECT o.feedback_id, o.decision_id, o.received_at, COALESCE(d.created_at, o.received_at) AS t,
           COALESCE(o.model_used, d.model) AS model, COALESCE(o.tier, d.tier) AS tier,
           o.quality, o.cost_usd, o.cost_estimated, o.tokens_in, o.tokens_out, o.latency_ms,
           o.error, o.fallback_used, COALESCE(o.task, d.task) AS task,
           COALESCE(o.run_id, d.run_id) AS run_id, COALESCE(o.role, d.role) AS role,
           COALESCE(o.step, d.step) AS step, COALESCE(o.user_id, d.user_id) AS user_id,
           COALESCE(d.propensity, o.propensity) AS propensity, o.source,
           COALESCE(d.prompt_hash, o.prompt_hash) AS prompt_hash,
           COALESCE(d.prompt, o.prompt) AS prompt, COALESCE(d.messages, o.messages) AS messages,
           d.tier AS decided_tier, d.reason, d.scores, d.features, d.quality_target,
           d.tokens_in AS estimated_tokens_in, d.router_version, d.embedding, d.embedder,
           d.feature_version, d.prior_scores
    FROM outcomes o LEFT JOIN decisions d ON d.decision_id = o.decision_id"""

Kind = Literal["writer", "durable", "reader"]


@dataclass(frozen=True)
class Database:
    """A parsed store URL: ``sqlite:///relative.db``, ``sqlite:////abs.db``, ``postgresql://``."""

    url: str
    dialect: Literal["sqlite", "postgresql"]
    path: Path | None = None

    @classmethod
    def from_url(cls, url: str) -> Database:
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///"):]
            if not path or path == ":memory:":
                raise ConfigError(
                    "store.url must name a SQLite file (sqlite:///traces.db); an in-memory "
                    "database cannot be shared by the writer thread and the API"
                )
            return cls(url, "sqlite", Path(path))
        if url.startswith(("postgresql://", "postgres://")):
            return cls(url, "postgresql")
        raise ConfigError(
            f"store.url must start with sqlite:/// or postgresql://. Got {url!r} instead."
        )

    def sql(self, text: str) -> str:
        """Portable SQL (``?`` placeholders) in this database's parameter style."""
        return text.replace("?", "%s") if self.dialect == "postgresql" else text

    def connect(self, kind: Kind) -> Any:
        """A DB-API connection, configured for its job (see the module docstring)."""
        try:
            if self.dialect == "sqlite":
                return self._sqlite(kind)
            return self._postgres()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the trace store {self.url}: {exc}") from exc

    def _sqlite(self, kind: Kind) -> sqlite3.Connection:
        assert self.path is not None
        if self.path.parent != Path(""):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if kind == 'durable' else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=10000")
        if kind == "reader":
            conn.execute("PRAGMA query_only=ON")
        return conn

    def _postgres(self) -> Any:
        try:
            import psycopg
        except ImportError as exc:
            raise ConfigError(
                "store.url is PostgreSQL but psycopg is not installed: "
                "pip install 'tier-router[postgres]'"
            ) from exc
        try:
            return psycopg.connect(self.url, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the trace store: {exc}") from exc

    @property
    def blob_type(self) -> str:
        return "BYTEA" if self.dialect == "postgresql" else "BLOB"

    def connection_errors(self) -> tuple[type[BaseException], ...]:
        """The driver's errors that mean "the database is not there right now" (down,
        restarting, locked), as opposed to a statement it refuses."""
        if self.dialect == "sqlite":
            return (sqlite3.OperationalError,)
        import psycopg

        return (psycopg.OperationalError,)

    def errors(self) -> tuple[type[BaseException], ...]:
        """The driver's exception classes, for the store to catch."""
        if self.dialect == "sqlite":
            return (sqlite3.Error,)
        import psycopg

        return (psycopg.Error,)

    def create_schema(self, conn: Any) -> None:
        """Create the tables once (idempotent); refuse a store written by a newer version."""
        cur = conn.cursor()
        for statement in (_DECISIONS.format(blob=self.blob_type), _OUTCOMES, _EVIDENCE,
                          _ESCALATIONS, _VERIFICATIONS, _META, _RUN_OUTCOMES, _CHECK_RESULTS,
                          *_INDEXES):
            cur.execute(statement)
        cur.execute(self.sql("SELECT value FROM store_meta WHERE key = ?"), ("schema_version",))
        row = cur.fetchone()
        if row is None:
            cur.execute(
                self.sql("INSERT INTO store_meta (key, value) VALUES (?, ?) "
                         "ON CONFLICT DO NOTHING"),
                ("schema_version", str(SCHEMA_VERSION)),
            )
        elif int(row[0]) > SCHEMA_VERSION:
            conn.rollback()
            raise StoreError(
                f"the trace store has schema {row[0]}, newer than this router's {SCHEMA_VERSION}"
            )
        elif int(row[0]) < SCHEMA_VERSION:
            conn.commit()
            self._migrate(conn)
        for statement in _LATE_INDEXES:
            cur.execute(statement)
        conn.commit()

    def _migrate(self, conn: Any) -> None:
        """Bring an older store to this version in place, keeping every row, in one
        transaction that re-reads the version (another replica may have just done it)."""
        cur = conn.cursor()
        if self.dialect == "sqlite":
            cur.execute("BEGIN IMMEDIATE")
        else:
            cur.execute("LOCK TABLE store_meta IN EXCLUSIVE MODE")
        cur.execute(self.sql("SELECT value FROM store_meta WHERE key = ?"), ("schema_version",))
        version = int(cur.fetchone()[0])
        if version >= SCHEMA_VERSION:
            conn.commit()
            return
        maybe = " IF NOT EXISTS" if self.dialect == "postgresql" else ""
        for added_in, column, kind in ADDED_COLUMNS:
            if added_in > version:
                cur.execute(f"ALTER TABLE decisions ADD COLUMN{maybe} {column} "
                            f"{kind.format(blob=self.blob_type)}")
        if version < 4:
            self._quality_nullable(cur)  # rebuilds outcomes with every column of this version
        elif version < 5:
            cur.execute(f"ALTER TABLE outcomes ADD COLUMN{maybe} api_key TEXT")
        if "reported_by" not in self._columns(cur, "run_outcomes"):
            self._key_run_outcomes(cur)
        cur.execute(self.sql("UPDATE store_meta SET value = ? WHERE key = ?"),
                    (str(SCHEMA_VERSION), "schema_version"))
        conn.commit()

    def _columns(self, cur: Any, table: str) -> list[str]:
        """The table's column names, as the database has them now."""
        if self.dialect == "sqlite":
            cur.execute(f"PRAGMA table_info({table})")
            return [row[1] for row in cur.fetchall()]
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                    "AND table_schema = current_schema()", (table,))
        return [row[0] for row in cur.fetchall()]

    def _key_run_outcomes(self, cur: Any) -> None:
        """A run_outcomes table keyed by run_id alone (versions 6-7) rebuilt keyed by
        (api_key, run_id), its rows kept (`_RUN_OUTCOMES_FROM_V7`)."""
        cur.execute("ALTER TABLE run_outcomes RENAME TO run_outcomes_v7")
        if self.dialect == "postgresql":  # the old primary key's index keeps its name
            cur.execute("ALTER INDEX IF EXISTS run_outcomes_pkey RENAME TO run_outcomes_v7_pkey")
        cur.execute(_RUN_OUTCOMES)
        cur.execute(_RUN_OUTCOMES_FROM_V7)
        cur.execute("DROP TABLE run_outcomes_v7")

    def _quality_nullable(self, cur: Any) -> None:
        """SQLite cannot drop a NOT NULL: the outcomes table is rebuilt (same columns, in
        order) and its indexes made again."""
        if self.dialect == "postgresql":
            cur.execute("ALTER TABLE outcomes ALTER COLUMN quality DROP NOT NULL")
            return
        cur.execute("ALTER TABLE outcomes RENAME TO outcomes_v3")
        cur.execute(_OUTCOMES)
        cur.execute("PRAGMA table_info(outcomes_v3)")
        columns = ", ".join(row[1] for row in cur.fetchall())  # what the old table has
        cur.execute(f"INSERT INTO outcomes ({columns}) SELECT {columns} FROM outcomes_v3")
        cur.execute("DROP TABLE outcomes_v3")
        for statement in _INDEXES:
            cur.execute(statement)
