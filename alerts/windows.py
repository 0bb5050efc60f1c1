"""Sentiment windows in Redis, by event time, per scope key (entity, topic, source, global).

Each scope key has one hash per time bucket holding count, negative, neutral, positive and the sum
of scores (P(positive) - P(negative)). A batch is recorded by one Lua script call, which

- skips an event id it has seen before (a replay after a crash never counts twice),
- skips an event older than the watermark (latest event time seen) minus the allowed lateness,
  counting it as late instead,
- expires a bucket the retention after its last write; late events are refused, so old buckets
  stop being written and memory stays bounded.

A sliding window is the sum of the buckets it covers, read in one pipeline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

EVIDENCE_KEPT = 50  # negative items kept per scope key, newest first, for an alert's "evidence"

RECORD_SCRIPT = """
local prefix, bucket_s = ARGV[1], tonumber(ARGV[2])
local retention_s, lateness_s = tonumber(ARGV[3]), tonumber(ARGV[4])
local events = cjson.decode(ARGV[5])
local watermark_key = prefix .. ':watermark'
local watermark = tonumber(redis.call('GET', watermark_key) or '-1e18')
local counted, duplicates, late = 0, 0, 0
-- The batch's sums per bucket hash and its evidence per key, written once each below: a key
-- touched by many events of a batch costs a few calls, not a few per event.
local sums, order, evidence, evidence_keys = {}, {}, {}, {}
for _, e in ipairs(events) do
  if redis.call('SET', prefix .. ':seen:' .. e.id, 1, 'NX', 'EX', retention_s) == false then
    duplicates = duplicates + 1
  else
    if e.t > watermark then watermark = e.t end
    if e.t < watermark - lateness_s then
      late = late + 1
    else
      local bucket = math.floor(e.t / bucket_s) * bucket_s
      for _, key in ipairs(e.keys) do
        local hash = prefix .. ':w:' .. key .. ':' .. bucket
        local sum = sums[hash]
        if not sum then
          sum = {count = 0, score = 0.0, negative = 0, neutral = 0, positive = 0}
          sums[hash] = sum
          order[#order + 1] = hash
        end
        sum.count = sum.count + 1
        sum[e.s] = (sum[e.s] or 0) + 1
        sum.score = sum.score + e.score
        if e.ev then
          local list = prefix .. ':ev:' .. key
          if not evidence[list] then
            evidence[list] = {}
            evidence_keys[#evidence_keys + 1] = list
          end
          table.insert(evidence[list], e.ev)
        end
      end
      counted = counted + 1
    end
  end
end
for _, hash in ipairs(order) do
  local sum = sums[hash]
  for _, field in ipairs({'count', 'negative', 'neutral', 'positive'}) do
    if sum[field] > 0 then redis.call('HINCRBY', hash, field, sum[field]) end
  end
  redis.call('HINCRBYFLOAT', hash, 'score', sum.score)
  redis.call('EXPIRE', hash, retention_s)
end
for _, list in ipairs(evidence_keys) do
  local items = evidence[list]
  -- Only the newest EVIDENCE_KEPT can stay; older ones of the batch would be trimmed at once.
  for i = math.max(1, #items - EVIDENCE_KEPT + 1), #items do redis.call('LPUSH', list, items[i]) end
  redis.call('LTRIM', list, 0, EVIDENCE_KEPT - 1)
  redis.call('EXPIRE', list, retention_s)
end
redis.call('SET', watermark_key, tostring(watermark))
-- A Lua number comes back as an integer: the watermark goes back as text.
return {counted, duplicates, late, tostring(watermark)}
""".replace("EVIDENCE_KEPT", str(EVIDENCE_KEPT))


# Sums a key's buckets per window inside Redis: one call instead of one HGETALL per bucket, which
# costs the evaluator far more in the client than in Redis. The score sum goes back as %.17g text,
# which reads back as the same float; buckets are summed oldest first, as the client summed them.
READ_SCRIPT = """
local prefix, keys = ARGV[1], cjson.decode(ARGV[2])
local starts, sizes = cjson.decode(ARGV[3]), cjson.decode(ARGV[4])
local out = {}
for _, key in ipairs(keys) do
  local i = 1
  for _, size in ipairs(sizes) do
    local count, negative, neutral, positive, score = 0, 0, 0, 0, 0.0
    for _ = 1, size do
      local f = redis.call('HMGET', prefix .. ':w:' .. key .. ':' .. starts[i], 'count', 'negative',
        'neutral', 'positive', 'score')
      count = count + (tonumber(f[1]) or 0)
      negative = negative + (tonumber(f[2]) or 0)
      neutral = neutral + (tonumber(f[3]) or 0)
      positive = positive + (tonumber(f[4]) or 0)
      if f[5] then score = score + tonumber(f[5]) end
      i = i + 1
    end
    for _, v in ipairs({count, negative, neutral, positive}) do out[#out + 1] = string.format('%d', v) end
    out[#out + 1] = string.format('%.17g', score)
  end
end
return out
"""


@dataclass(frozen=True)
class WindowEvent:
    id: str
    event_time: float  # seconds since the epoch
    sentiment: str
    score: float
    keys: tuple[str, ...]
    evidence: dict[str, object] | None = None  # {id, text, url, negative} for negative items


@dataclass(frozen=True)
class RecordResult:
    counted: int
    duplicates: int
    late: int


@dataclass(frozen=True)
class WindowFigures:
    count: int
    negative: int
    neutral: int
    positive: int
    score_sum: float

    @property
    def negative_ratio(self) -> float:
        return self.negative / self.count if self.count else 0.0

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.count if self.count else 0.0


def scope_keys(entities: Iterable[str], topics: Iterable[str], source: str) -> tuple[str, ...]:
    """Every window an event counts in: each entity, each of its topics, its source, and the total."""
    keys = [f"entity:{e}" for e in entities]
    keys += [f"topic:{t}" for t in dict.fromkeys(topics)]
    keys += [f"source:{source}", "global:all"]
    return tuple(keys)


class WindowStore:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "fs",
        bucket_s: int = 60,
        retention_s: int = 2 * 86_400,
        lateness_s: int = 300,
    ):
        if retention_s < lateness_s:
            raise ValueError("retention must be at least the allowed lateness")
        self.client = client
        self.prefix = prefix
        self.bucket_s = bucket_s
        self.retention_s = retention_s
        self.lateness_s = lateness_s
        self._watermark = float("-inf")  # the newest the record script has reported to this store
        self._record = client.register_script(RECORD_SCRIPT)
        self._read = client.register_script(READ_SCRIPT)

    def record(self, events: Sequence[WindowEvent]) -> RecordResult:
        if not events:
            return RecordResult(0, 0, 0)
        payload = json.dumps(
            [
                {"id": e.id, "t": e.event_time, "s": e.sentiment, "score": e.score, "keys": list(e.keys)}
                | ({"ev": json.dumps({**e.evidence, "t": e.event_time})} if e.evidence else {})
                for e in events
            ]
        )
        counted, duplicates, late, watermark = self._record(
            args=[self.prefix, self.bucket_s, self.retention_s, self.lateness_s, payload]
        )
        self._watermark = max(self._watermark, float(watermark))
        return RecordResult(int(counted), int(duplicates), int(late))

    def settled_until(self) -> float:
        """No event can land before this time any more: the windows refuse what is older than the
        watermark by the lateness. The watermark is the newest this store's own writes have seen,
        which other workers' writes can only have moved later, so what it calls settled is."""
        return self._watermark - self.lateness_s

    def buckets(self, window_s: int, now: float) -> list[int]:
        """Bucket starts of the window (now - window_s, now], oldest first."""
        last = math.floor(now / self.bucket_s) * self.bucket_s
        first = math.floor((now - window_s) / self.bucket_s + 1) * self.bucket_s
        return list(range(first, last + 1, self.bucket_s))

    def read_series(
        self, keys: Sequence[str], window_s: int, periods: int, now: float
    ) -> dict[str, list[WindowFigures]]:
        """For each key, `periods` consecutive windows ending at now, oldest first, in one pipeline."""
        starts = self.buckets(window_s * periods, now)
        per_window = max(1, len(starts) // periods)
        # The newest window gets exactly its buckets; any remainder falls to the oldest one.
        sizes = [len(starts) - per_window * (periods - 1)] + [per_window] * (periods - 1)
        if not keys:
            return {}
        reply = self._read(args=[self.prefix, json.dumps(list(keys)), json.dumps(starts), json.dumps(sizes)])
        figures = [
            WindowFigures(int(c), int(neg), int(neu), int(pos), float(score))
            for c, neg, neu, pos, score in zip(*[iter(reply)] * 5, strict=True)
        ]
        return {key: figures[i * periods : (i + 1) * periods] for i, key in enumerate(keys)}

    def read_many(self, keys: Sequence[str], window_s: int, now: float) -> dict[str, WindowFigures]:
        return {key: figures[-1] for key, figures in self.read_series(keys, window_s, 1, now).items()}

    def read(self, key: str, window_s: int, now: float) -> WindowFigures:
        return self.read_many([key], window_s, now)[key]

    def evidence(self, key: str, window_s: int, now: float, top: int = 3) -> list[dict[str, object]]:
        """The most negative items of the window for this key (from the newest EVIDENCE_KEPT)."""
        items = [json.loads(raw) for raw in self.client.lrange(f"{self.prefix}:ev:{key}", 0, -1)]
        recent = [i for i in items if now - window_s < i.pop("t") <= now]
        return sorted(recent, key=lambda i: -float(i.get("negative", 0)))[:top]
