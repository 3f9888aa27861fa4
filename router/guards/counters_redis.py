"""`Counters` in Redis, so that every replica counts against the same limits and budgets.

Each operation is one round trip and atomic on the server: `take` and `amend` are Lua scripts
(run by EVALSHA, reloaded by redis-py if a restarted Redis lost them), `add` a MULTI pipeline,
`get` one MGET. No lock is held in this process across a round trip, so replicas and threads
never wait on each other except inside Redis, which runs one script at a time.

A window `K` is two keys: the sorted set `K:z` (entry name -> time in ms) and the hash `K:h`
(entry name -> amount, and `_total`), both expiring a little after the window. A sum is a
string holding a float (INCRBYFLOAT). Times come from the calling process (`now`): replicas need
clocks in step (NTP); a skew of s seconds moves a window's edge by s. Every key is in one Redis
(no cluster hash slots are assumed).

Connection errors and timeouts are raised as they come (`redis.RedisError`);
`router.guards.shared.SharedCounters` decides what happens then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from router.guards.counters import SUM_TTL_S, WINDOW_S, Taken, Window

# KEYS: z1, h1, z2, h2, ..., then the sums to read. ARGV: now_ms, span_ms, entry, n, then per
# window: limit, number of parts, the parts' amounts.
TAKE = """
local now, span, entry, n = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local used, limits, parts = {}, {}, {}
local at = 5
for i = 1, n do
  local z, h = KEYS[2 * i - 1], KEYS[2 * i]
  limits[i] = tonumber(ARGV[at])
  local count = tonumber(ARGV[at + 1])
  local amounts = {}
  for j = 1, count do amounts[j] = tonumber(ARGV[at + 1 + j]) end
  parts[i] = amounts
  at = at + 2 + count
  local total = tonumber(redis.call('HGET', h, '_total') or '0')
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', now - span)
  if #old > 0 then
    for _, m in ipairs(old) do
      total = total - tonumber(redis.call('HGET', h, m) or '0')
      redis.call('HDEL', h, m)
    end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now - span)
    if total < 0 then total = 0 end
    redis.call('HSET', h, '_total', total)
  end
  used[i] = total
end
local refused, wait = 0, 0
for i = 1, n do
  local amount = 0
  for _, a in ipairs(parts[i]) do amount = amount + a end
  if used[i] + amount > limits[i] then
    refused, wait = i, span
    local z, h = KEYS[2 * i - 1], KEYS[2 * i]
    local rows = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
    local freed = 0
    for j = 1, #rows, 2 do
      freed = freed + tonumber(redis.call('HGET', h, rows[j]) or '0')
      if used[i] - freed + amount <= limits[i] then
        wait = tonumber(rows[j + 1]) + span - now
        break
      end
    end
    break
  end
end
if refused == 0 then
  for i = 1, n do
    local z, h = KEYS[2 * i - 1], KEYS[2 * i]
    for j, a in ipairs(parts[i]) do
      local name = entry
      if j > 1 then name = entry .. '.' .. (j - 1) end
      redis.call('ZADD', z, now, name)
      redis.call('HSET', h, name, a)
      used[i] = used[i] + a
    end
    redis.call('HSET', h, '_total', used[i])
    redis.call('PEXPIRE', z, span + 1000)
    redis.call('PEXPIRE', h, span + 1000)
  end
end
local out = {tostring(refused), tostring(wait)}
for i = 1, n do out[#out + 1] = tostring(used[i]) end
for k = 2 * n + 1, #KEYS do out[#out + 1] = redis.call('GET', KEYS[k]) or '0' end
return out
"""

# KEYS: z, h. ARGV: member, amount.
AMEND = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
if not old or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local total = tonumber(redis.call('HGET', KEYS[2], '_total') or '0')
total = total + tonumber(ARGV[2]) - tonumber(old)
if total < 0 then total = 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], '_total', total)
return 1
"""

# KEYS: the sums. ARGV: ttl_s, then one amount per key. A sum never goes below 0.
ADD = """
local out = {}
for i, key in ipairs(KEYS) do
  local value = redis.call('INCRBYFLOAT', key, ARGV[i + 1])
  if tonumber(value) < 0 then
    redis.call('SET', key, '0')
    value = '0'
  end
  redis.call('EXPIRE', key, ARGV[1])
  out[i] = value
end
return out
"""

# KEYS: the sums. ARGV: ttl_s, then one value per key: each sum raised to at least it.
FLOOR = """
for i, key in ipairs(KEYS) do
  local value = tonumber(redis.call('GET', key) or '0')
  if tonumber(ARGV[i + 1]) > value then
    redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1])
  end
end
return 1
"""


class RedisCounters:
    """The four `Counters` operations as one Redis round trip each."""

    def __init__(self, client: Any, url: str, prefix: str = ""):
        self._client = client
        self.where = url
        self._prefix = prefix  # before every key: deployments may share one Redis
        self._take = client.register_script(TAKE)
        self._amend = client.register_script(AMEND)
        self._add = client.register_script(ADD)
        self._floor = client.register_script(FLOOR)

    @property
    def client(self) -> Any:
        """The Redis client, for the other shared states (run spend) to script on."""
        return self._client

    @property
    def prefix(self) -> str:
        return self._prefix

    def ping(self) -> None:
        self._client.ping()

    def take(self, windows: Sequence[Window], entry: str, now: float,
             reads: Sequence[str] = ()) -> Taken:
        p = self._prefix
        keys = [f"{p}{w.key}:{part}" for w in windows for part in "zh"]
        keys += [p + k for k in reads]
        args: list[Any] = [_ms(now), _ms(WINDOW_S), entry, len(windows)]
        for w in windows:
            args += [w.limit, len(w.amounts), *w.amounts]
        out = [_text(v) for v in self._take(keys=keys, args=args)]
        refused = int(out[0])
        used = tuple(int(float(v)) for v in out[2:2 + len(windows)])
        values = tuple(float(v) for v in out[2 + len(windows):])
        return Taken(refused - 1 if refused else None, float(out[1]) / 1000.0, used, values)

    def amend(self, key: str, member: str, amount: int, now: float) -> None:
        p = self._prefix
        self._amend(keys=[f"{p}{key}:z", f"{p}{key}:h"], args=[member, amount])

    def add(self, amounts: Mapping[str, float]) -> tuple[float, ...]:
        if not amounts:
            return ()
        keys = [self._prefix + k for k in amounts]
        out = self._add(keys=keys, args=[int(SUM_TTL_S), *map(repr, amounts.values())])
        return tuple(float(_text(v)) for v in out)

    def get(self, keys: Sequence[str]) -> tuple[float, ...]:
        if not keys:
            return ()
        values = self._client.mget([self._prefix + k for k in keys])
        return tuple(float(_text(v)) if v is not None else 0.0 for v in values)

    def floor(self, values: Mapping[str, float]) -> None:
        if values:
            keys = [self._prefix + k for k in values]
            self._floor(keys=keys, args=[int(SUM_TTL_S), *map(repr, values.values())])


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
