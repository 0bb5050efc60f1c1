"""The story index in Redis, shared by every worker: which story each event belongs to.

An event joins the story of an earlier event whose text is a near-copy of its own (MinHash Jaccard
estimate at or above the threshold of its language), else it starts a story of its own, whose id is its
own id. A batch is assigned by one Lua script call, atomic like every script, so that two workers never
both start a story for two copies that arrive at once, and events of one batch find each other.

One hash per `ttl_s` of event time, `<prefix>:story:b:<bucket>`, holds all there is, and expires
`2 x ttl_s` (wall clock) after its last write:

- `e:<event id>` -> the event's story id, so that a replayed event (same id and event time) gets the
  story it got the first time, whatever its text;
- `s:<story id>` -> the story's first signature, compacted (`minhash.Signer.compact`), for re-checks;
- `<band number byte><8-byte band hash>` -> the story holding that LSH band; a band already taken keeps
  its first story.

An event looks its bands up in its own bucket's hash and the one before, so a story is found by
copies published up to between `ttl_s` and 2 x `ttl_s` after it. Buckets go by event time, so that a
backtest or a replay over old history groups as the live stream did. Why not one key per band with its
own TTL: a key costs Redis about three times a hash field, a story has 16 bands, and each key's expiry
would be one more call; why not datasketch's `MinHashLSH` on Redis: it keeps its keys forever (no TTL)
and needs round trips per query.

Memory: about 1.5 KB per story (16 bands, its signature and its event) and 100 bytes per copy, for
2 x `ttl_s`: 50,000 stories a day with the default of one day hold about 150 MB. A day's hash then
has some 900,000 fields, which Redis frees in one go when it expires: docker-compose.yml has Redis free
expired keys off its main thread (`lazyfree-lazy-expire yes`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import redis

from stories.minhash import Signer
from stories.text import language, shingles

# Chosen on 418 hand-labelled pairs (the table in stories/__init__.py): English at 0.6 has precision 0.80
# and recall 0.85; Chinese at 0.45, 0.95 and 0.88.
THRESHOLDS: Mapping[str, float] = {"en": 0.6, "zh": 0.45}
# Only a text's start is compared: a headline or post whole, an article's lead. Shingling costs about
# 1 µs per word, and a re-published article that keeps its first 2,000 characters is a copy.
MAX_TEXT_CHARS = 2000

# ARGV: prefix, expire_s, then per event: id, its bucket, the bucket before, threshold, compact signature,
# the number of bands, and the band fields (a byte for the band's number, then its 8-byte hash). Returns
# one story id per event. The similarity is `minhash.estimate`'s.
ASSIGN_SCRIPT = """
local prefix, expire_s = ARGV[1], tonumber(ARGV[2])
local chance = 1 / 256
local out, touched = {}, {}
local i = 3
while i <= #ARGV do
  local id, threshold, sig, count = ARGV[i], tonumber(ARGV[i + 3]), ARGV[i + 4], tonumber(ARGV[i + 5])
  local here = prefix .. ':story:b:' .. ARGV[i + 1]
  local before = prefix .. ':story:b:' .. ARGV[i + 2]
  local fields = {'e:' .. id}
  for j = 1, count do fields[j + 1] = ARGV[i + 5 + j] end
  i = i + 6 + count
  -- The event's own answer, if it had one, and its bands' stories, in one call.
  local found_here = redis.call('HMGET', here, unpack(fields))
  local story = found_here[1]
  if not story then
    story = id
    local writes = {'e:' .. id, id}
    if count > 0 then
      local found_before = redis.call('HMGET', before, unpack(fields, 2))
      local mine = {string.byte(sig, 1, -1)}
      local k = #mine
      local checked, best, best_id = {}, -1, nil
      for _, look in ipairs({{found_here, 1, here}, {found_before, 0, before}}) do
        local found, shift, hash = look[1], look[2], look[3]
        for j = 1, count do
          local candidate = found[j + shift]
          if candidate and not checked[candidate] then
            checked[candidate] = true
            local theirs = redis.call('HGET', hash, 's:' .. candidate)
            if theirs and #theirs == k then
              local other, equal = {string.byte(theirs, 1, -1)}, 0
              for n = 1, k do
                if mine[n] == other[n] then equal = equal + 1 end
              end
              local similarity = (equal / k - chance) / (1 - chance)
              if similarity >= threshold and similarity > best then best, best_id = similarity, candidate end
            end
          end
        end
      end
      if best_id then
        story = best_id
        writes[2] = story
      else
        -- A new story: its signature, and the bands no earlier story holds.
        writes[#writes + 1] = 's:' .. id
        writes[#writes + 1] = sig
        for j = 1, count do
          if not found_here[j + 1] then
            writes[#writes + 1] = fields[j + 1]
            writes[#writes + 1] = id
          end
        end
      end
    end
    redis.call('HSET', here, unpack(writes))
    touched[here] = true
  end
  out[#out + 1] = story
end
for hash in pairs(touched) do redis.call('EXPIRE', hash, expire_s) end
return out
"""


class StoryText(NamedTuple):
    """One event to assign: its id, its text, its declared language and its event time (seconds since
    the epoch; None: now)."""

    id: str
    text: str
    lang: str | None = None
    at: float | None = None


@dataclass(frozen=True)
class StoryMatch:
    story_id: str  # the id of the story's first event
    is_copy: bool  # False for that first event itself


class StoryIndex:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "fs",
        ttl_s: int = 86_400,
        threshold: float | Mapping[str, float] | None = None,
        signer: Signer | None = None,
        clock: Callable[[], float] = time.time,
    ):
        if ttl_s < 1:
            raise ValueError("ttl_s must be at least one second")
        if threshold is None:
            threshold = THRESHOLDS
        if isinstance(threshold, Mapping):
            self.thresholds = {**THRESHOLDS, **threshold}
        else:
            self.thresholds = dict.fromkeys(THRESHOLDS, float(threshold))
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.signer = signer or Signer()
        self.clock = clock
        self._assign = client.register_script(ASSIGN_SCRIPT)

    def prepare(self, items: Sequence[StoryText | tuple]) -> list[bytes | str]:
        """The script's arguments for a batch: everything but the Redis call, in the caller's process."""
        items = [StoryText(*item) for item in items]
        texts = [item.text[:MAX_TEXT_CHARS] for item in items]
        languages = [language(text, item.lang) for text, item in zip(texts, items, strict=True)]
        sets = [shingles(text, lang) for text, lang in zip(texts, languages, strict=True)]
        signatures = self.signer.signatures(sets)
        compact = self.signer.compact(signatures)
        bands = self.signer.band_hashes(signatures)
        now = self.clock()
        # Each band's field: a byte for the band's number (1, 2, ...), then its hash's 8 bytes.
        fields = np.empty((len(items), self.signer.bands, 9), np.uint8)
        fields[:, :, 0] = np.arange(1, self.signer.bands + 1, dtype=np.uint8)
        fields[:, :, 1:] = bands.astype("<u8").view(np.uint8).reshape(len(items), self.signer.bands, 8)
        args: list[bytes | str] = [self.prefix, str(2 * self.ttl_s)]
        for i, item in enumerate(items):
            bucket = math.floor((now if item.at is None else item.at) / self.ttl_s)
            args += [item.id, str(bucket), str(bucket - 1), repr(self.thresholds[languages[i]])]
            if sets[i]:
                row = fields[i].tobytes()
                args += [
                    compact[i],
                    str(self.signer.bands),
                    *(row[9 * j : 9 * j + 9] for j in range(self.signer.bands)),
                ]
            else:
                args += [b"", "0"]
        return args

    def assign(self, items: Sequence[StoryText | tuple]) -> list[StoryMatch]:
        """The story of each event, in order; events of the batch see the ones before them."""
        if not items:
            return []
        stories = [s.decode() if isinstance(s, bytes) else s for s in self._assign(args=self.prepare(items))]
        return [
            StoryMatch(story, is_copy=story != item[0]) for item, story in zip(items, stories, strict=True)
        ]
