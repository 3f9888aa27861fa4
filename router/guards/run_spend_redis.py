"""Run spend shared by replicas: each live run a Redis hash, so a run's cap holds whichever
replica its calls reach.

With ``shared_state`` in the config, `SharedRunSpend` stands in for the in-process
`LocalRunSpend` (`router.guards.run_spend`): one hash per run, ``<prefix>run:<key>:<run_id>``, with
the fields of a `RunView` (``spend`` by ``HINCRBYFLOAT``, ``calls``, ``tier``, ``model``,
``started``, ``last``) and a TTL of ``runs.expire_after_s`` renewed by every call, so an idle
run expires in Redis by itself. A decision's add is one Lua script (one round trip) that
returns the new view; a correction from feedback is another, applied only while the run lives.

Every operation is applied to the local state too, and while Redis cannot be reached the
local state answers (the shared counters' handling: logged once, retried after
``shared_state.retry_s``, never a refusal): N replicas can then let a run spend up to N times
its cap, as before. Live runs read from the trace store at start are written to Redis where it
knows less (a restarted Redis), never lowering what it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from router.config import RunsConfig
from router.guards.run_spend import LocalRunSpend, RunKey, RunView
from router.guards.shared import SharedCounters

# KEYS: the run's hash. ARGV: usd, now, tier, model, ttl_s. Returns the hash as a flat list.
ADD = """
local k = KEYS[1]
local spend = tonumber(redis.call('HINCRBYFLOAT', k, 'spend', ARGV[1]))
if spend < 0 then redis.call('HSET', k, 'spend', 0) end
redis.call('HINCRBY', k, 'calls', 1)
redis.call('HSETNX', k, 'started', ARGV[2])
redis.call('HSET', k, 'last', ARGV[2], 'tier', ARGV[3], 'model', ARGV[4])
redis.call('EXPIRE', k, ARGV[5])
return redis.call('HGETALL', k)
"""
# KEYS: the run's hash. ARGV: usd. A gone run is left gone.
CORRECT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local spend = tonumber(redis.call('HINCRBYFLOAT', KEYS[1], 'spend', ARGV[1]))
if spend < 0 then redis.call('HSET', KEYS[1], 'spend', 0) end
return 1
"""
# KEYS: the run's hash. ARGV: spend, calls, tier, model, started, last, ttl_s. Raises what
# Redis holds to the stored run's figures (a restarted Redis), never lowers it.
FLOOR = """
local k = KEYS[1]
local have = tonumber(redis.call('HGET', k, 'spend') or '-1')
if have < tonumber(ARGV[1]) then
  redis.call('HSET', k, 'spend', ARGV[1], 'calls', ARGV[2], 'tier', ARGV[3], 'model', ARGV[4],
             'started', ARGV[5], 'last', ARGV[6])
  redis.call('EXPIRE', k, ARGV[7])
end
return 1
"""


class SharedRunSpend:
    """`RunSpend` in Redis, with this process's `LocalRunSpend` kept current beside it."""

    def __init__(self, local: LocalRunSpend, shared: SharedCounters):
        self.local = local
        self.shared = shared
        self._prefix = getattr(shared.remote, "prefix", "")
        client = getattr(shared.remote, "client", None)  # scripts sent once, then by sha1
        self._add: Any = client.register_script(ADD) if client is not None else None
        self._correct: Any = client.register_script(CORRECT) if client is not None else None
        self._floor: Any = client.register_script(FLOOR) if client is not None else None

    @property
    def expire_after_s(self) -> float:
        return self.local.expire_after_s

    def configure(self, config: RunsConfig) -> None:
        self.local.configure(config)

    def _key(self, run: RunKey) -> str:
        return f"{self._prefix}run:{run[0]}:{run[1]}"

    def _ttl(self) -> int:
        return max(1, int(round(self.local.expire_after_s)))

    def add(self, run: RunKey, usd: float, tier: str | None, model: str | None) -> RunView:
        mine = self.local.add(run, usd, tier, model)
        now = self.local.clock()

        def remote(client: Any) -> RunView:
            flat = self._add(keys=[self._key(run)], args=[repr(usd), repr(now), tier or "",
                                                          model or "", self._ttl()])
            return _view(flat) or mine

        return self.shared.call(remote, lambda: mine)

    def correct(self, run: RunKey, usd: float) -> None:
        self.local.correct(run, usd)
        if usd != 0:
            self.shared.call(lambda c: self._correct(keys=[self._key(run)], args=[repr(usd)]),
                             lambda: None)

    def get(self, run: RunKey) -> RunView | None:
        def remote(client: Any) -> RunView | None:
            view = _view(client.hgetall(self._key(run)))
            if view is None or self.local.clock() - view.last_call_at > self.expire_after_s:
                return None
            return view

        return self.shared.call(remote, lambda: self.local.get(run))

    def expire(self) -> int:
        """Idle runs out of this process's memory (Redis expires its own by TTL)."""
        return self.local.expire()

    def load(self, totals: Mapping[RunKey, Mapping[str, Any]]) -> int:
        """Live runs from the trace store: into the local state, and into Redis where it holds
        less of a run than the store (one pipelined round trip)."""
        count = self.local.load(totals)

        def remote(client: Any) -> None:
            pipe = client.pipeline(transaction=False)
            for run, f in totals.items():
                self._floor(keys=[self._key(run)], args=[
                    repr(float(f["spend_usd"])), int(f["calls"]), f.get("tier") or "",
                    f.get("model") or "", repr(float(f["started_at"])),
                    repr(float(f["last_call_at"])), self._ttl()], client=pipe)
            pipe.execute()

        if totals:
            self.shared.call(remote, lambda: None)
        return count

    def __len__(self) -> int:
        return len(self.local)


def _view(raw: Any) -> RunView | None:
    """A run's hash (a flat [field, value, ...] list from a script, or HGETALL's dict)."""
    if not raw:
        return None
    if isinstance(raw, list):
        raw = dict(zip(raw[::2], raw[1::2], strict=True))
    f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
         for k, v in raw.items()}
    if "spend" not in f or "last" not in f:
        return None
    return RunView(spend_usd=max(float(f["spend"]), 0.0), calls=int(f.get("calls") or 0),
                   tier=f.get("tier") or None, model=f.get("model") or None,
                   started_at=float(f.get("started") or f["last"]),
                   last_call_at=float(f["last"]))
