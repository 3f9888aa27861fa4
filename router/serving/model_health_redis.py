"""Model health shared by replicas: the outcomes and circuits of `ModelHealth` kept in Redis.

With ``shared_state`` in the config, every replica records each outcome in the same Redis and
reads the same circuits, so a provider outage opens a model's circuit for all of them after
`min_calls` failures in total, and one replica's successful probe closes it for all. Per
model, three keys (under ``shared_state.prefix``): ``health:<model>:z``, a sorted set of the
window's outcomes (score: time in ms; member: ``ms:nonce:kind-or-ok:decision:key:latency``,
the decision and a hash of the key that made it, so a circuit opens only on failures of
`min_calls` decisions and `ModelHealth.required_keys` keys, as in-process),
``health:<model>:f``, the failures among them, and ``health:<model>:c``, a hash with the
circuit's ``opened_at``, ``why`` and ``closed_at``. `record` is one Lua script (append, prune,
and the same transitions as `ModelHealth.record`, atomically); a snapshot is one pipelined
round trip for every configured model (circuits at most every `STATS_S`, so another replica's
opening shows within 50 ms; the outcomes behind error rates and latencies every
`REMOTE_REFRESH_S`; this replica's own circuit changes at once). Times come from this
process's clock, so replicas need clocks in step (NTP), as for the shared limits.

Every outcome is recorded locally too. Redis is reached through the shared limits'
`SharedCounters.call`, so one up/down state covers both (the log, ``/readyz`` and
``tier_router_shared_state_up`` say when Redis is lost): while it cannot be reached, decisions
read the local state (this replica's own feedback, as without ``shared_state``), and Redis is
tried again after ``shared_state.retry_s``; health never refuses a call for it.
"""

from __future__ import annotations

import hashlib
import math
import threading
import uuid
from collections.abc import Callable
from typing import Any

from router.decision.health_view import HealthView
from router.guards.shared import SharedCounters
from router.serving.model_health import STATS_S, ModelHealth, Source, state_of

REMOTE_REFRESH_S = 0.5  # other replicas' outcomes (error rates, latency) show within this

# KEYS: z, f, c. ARGV: now_ms, window_ms, max_events, member, ok (1/0), at_ms (-1: now),
# min_calls, max_error_rate, cooldown_ms, ttl_s, kind, window text (for `why`), min_keys.
# Returns 1 when the circuit changed, 0 when not, -1 when the outcome was dropped.
RECORD = """
local z, f, c = KEYS[1], KEYS[2], KEYS[3]
local now, window, maxn = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local member, ok, at = ARGV[4], ARGV[5] == '1', tonumber(ARGV[6])
local min_calls, max_rate = tonumber(ARGV[7]), tonumber(ARGV[8])
local cooldown, ttl, kind = tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11]
local closed_at = tonumber(redis.call('HGET', c, 'closed_at') or '-1')
if at >= 0 and at < closed_at then return -1 end
if at < 0 then at = now end
redis.call('ZADD', z, now, member)
if not ok then redis.call('ZADD', f, now, member) end
redis.call('ZREMRANGEBYSCORE', z, '-inf', '(' .. (now - window))
redis.call('ZREMRANGEBYSCORE', f, '-inf', '(' .. (now - window))
local n = redis.call('ZCARD', z)
if n > maxn then
  local drop = redis.call('ZRANGE', z, 0, n - maxn - 1)
  redis.call('ZREMRANGEBYRANK', z, 0, n - maxn - 1)
  for _, m in ipairs(drop) do redis.call('ZREM', f, m) end
  n = maxn
end
local changed = 0
local opened = redis.call('HGET', c, 'opened_at')
if not opened then
  if n >= min_calls then
    local failed = redis.call('ZCARD', f)
    local in_a_row = true
    for _, m in ipairs(redis.call('ZREVRANGE', z, 0, min_calls - 1)) do
      if not redis.call('ZSCORE', f, m) then in_a_row = false end
    end
    if in_a_row or failed / n > max_rate then
      local kinds, names, decs, nd, keys, nk = {}, {}, {}, 0, {}, 0
      for _, m in ipairs(redis.call('ZRANGE', f, 0, -1)) do
        local nonce, k = string.match(m, '^[^:]*:([^:]*):([^:]*)')
        if not kinds[k] then kinds[k] = 0; table.insert(names, k) end
        kinds[k] = kinds[k] + 1
        local d, who = string.match(m, '^[^:]*:[^:]*:[^:]*:([^:]*):([^:]*):')
        if not d or d == '-' then d = nonce end  -- no decision known: a source of its own
        who = who or '-'
        if not decs[d] then decs[d] = true; nd = nd + 1 end
        if not keys[who] then keys[who] = true; nk = nk + 1 end
      end
      if nd >= min_calls and nk >= tonumber(ARGV[13]) then
        table.sort(names)
        local parts = {}
        for _, k in ipairs(names) do table.insert(parts, k .. ' ' .. kinds[k]) end
        local why = failed .. ' of ' .. n .. ' calls failed in the last ' .. ARGV[12] ..
                    ' s (' .. table.concat(parts, ', ') .. ')'
        redis.call('HSET', c, 'opened_at', ARGV[1], 'why', why)
        changed = 1
      end
    end
  end
elseif at >= tonumber(opened) + cooldown then
  if ok then
    redis.call('HDEL', c, 'opened_at', 'why')
    redis.call('HSET', c, 'closed_at', ARGV[1])
    redis.call('DEL', z, f)
    redis.call('ZADD', z, now, member)
  else
    redis.call('HSET', c, 'opened_at', ARGV[1],
               'why', 'a probe after the cooldown failed (' .. kind .. ')')
  end
  changed = 1
end
redis.call('EXPIRE', z, ttl)
redis.call('EXPIRE', f, ttl)
redis.call('EXPIRE', c, ttl)
return changed
"""


class RedisHealth:
    """The shared half of a `ModelHealth` (`ModelHealth.share`): its outcomes and circuits in
    Redis, read back for every decision (cached as the module docstring says)."""

    def __init__(self, health: ModelHealth, shared: SharedCounters):
        self.health = health
        self.shared = shared
        self.prefix = getattr(shared.remote, "prefix", "")
        self._lock = threading.Lock()
        self._view: HealthView | None = None
        self._view_at = -math.inf
        self._events: dict[str, list[Any]] = {}  # model -> outcomes in the window, as read
        self._events_at = -math.inf

    def record(self, model: str, ok: bool, latency_ms: float | None, at: float | None,
               kind: str | None, source: Source = (None, None)) -> None:
        config, now = self.health.config, self.health.clock()
        latency = "" if latency_ms is None or not ok else repr(float(latency_ms))
        decision, key = source
        who = "-" if key is None else hashlib.sha256(key.encode()).hexdigest()[:12]
        member = (f"{_ms(now)}:{uuid.uuid4().hex[:12]}:{'ok' if ok else kind or 'error'}:"
                  f"{_token(decision)}:{who}:{latency}")
        ttl = math.ceil(config.window_s + 2 * config.cooldown_s + 60)
        args = [_ms(now), _ms(config.window_s), config.max_events, member, int(ok),
                -1 if at is None else _ms(at), config.min_calls, config.max_error_rate,
                _ms(config.cooldown_s), ttl, kind or "error", f"{config.window_s:g}",
                self.health.required_keys]
        changed = self.shared.call(
            lambda client: client.eval(RECORD, 3, *self._keys(model), *args), lambda: 0)
        if int(changed) == 1:
            with self._lock:  # this replica sees its own circuit change at once
                self._view, self._events_at = None, -math.inf

    def snapshot(self, local: Callable[[], HealthView], fresh: bool = True) -> HealthView:
        """Circuits at most every STATS_S, outcomes every REMOTE_REFRESH_S; `local()` while
        Redis cannot be read. Without `fresh`, the view last read (else the local one): no
        round trip, no change of the shared state's up/down."""
        now = self.health.clock()
        with self._lock:
            if self._view is not None and (not fresh or now - self._view_at < STATS_S):
                return self._view
        if not fresh:
            return local()
        with self._lock:
            events = self._events if now - self._events_at < REMOTE_REFRESH_S else None
        read = self.shared.call(lambda client: self._read(client, now, events is None),
                                lambda: None)
        if read is None:  # Redis lost: this replica's own state, for scrapes too
            with self._lock:
                self._view = None
            return local()
        circuits, outcomes = read
        with self._lock:
            if events is None:
                events, self._events, self._events_at = outcomes, outcomes, now
            view = self._view = self._view_of(circuits, events, now)
            self._view_at = now
        return view

    def _read(self, client: Any, now: float, with_events: bool
              ) -> tuple[dict[str, tuple[Any, Any]], dict[str, list[Any]]]:
        """Every configured model's circuit (and outcomes in the window), one round trip."""
        models = sorted(self.health.models)
        pipe = client.pipeline(transaction=False)
        for model in models:
            z, _, c = self._keys(model)
            pipe.hmget(c, "opened_at", "why")
            if with_events:
                pipe.zrangebyscore(z, _ms(now - self.health.config.window_s), "+inf")
        replies = iter(pipe.execute())
        circuits: dict[str, tuple[Any, Any]] = {}
        events: dict[str, list[Any]] = {}
        for model in models:
            circuits[model] = tuple(next(replies))
            if with_events:
                events[model] = [_event(m) for m in next(replies)]
        return circuits, events

    def _view_of(self, circuits: dict[str, tuple[Any, Any]], events: dict[str, list[Any]],
                 now: float) -> HealthView:
        config, states = self.health.config, {}
        edge = now - config.window_s
        for model, (opened, why) in circuits.items():
            mine = [e for e in events.get(model, []) if e[0] >= edge]
            if not mine and opened is None:
                continue
            opened_at = float(_text(opened)) / 1000 if opened is not None else None
            states[model] = state_of(mine, opened_at, _text(why) if why else None,
                                     config.cooldown_s, now)
        return HealthView(states, now, config.probe_share, config.min_calls)

    def _keys(self, model: str) -> list[str]:
        base = f"{self.prefix}health:{model}:"
        return [base + "z", base + "f", base + "c"]


def _event(member: Any) -> tuple[float, bool, float, str | None]:
    parts = _text(member).split(":")
    ms, kind, latency = parts[0], parts[2], parts[-1]  # 4 parts: written before sources
    ok = kind == "ok"
    return (int(ms) / 1000, ok, float(latency) if latency else math.nan, None if ok else kind)


def _token(decision: str | None) -> str:
    """A decision id as a member field: '-' for none, and never a ':' (ids are free text)."""
    if decision is None:
        return "-"
    return decision if decision.isalnum() else hashlib.sha256(decision.encode()).hexdigest()[:24]


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
