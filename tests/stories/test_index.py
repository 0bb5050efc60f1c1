"""The story index in the harness's real Redis: copies join, stories stay apart, replays and workers agree."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from stories import StoryIndex, StoryMatch, StoryText

pytestmark = pytest.mark.stack
T0 = 1_800_000_000.0  # event time; buckets of ttl_s seconds


@pytest.fixture(scope="module")
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def index(client: redis.Redis, **options) -> StoryIndex:
    return StoryIndex(client, prefix=f"t{uuid.uuid4().hex[:8]}", **options)


WIRE = "Glencore slumps 30 percent as debt fears grow over commodity rout"
COPIES = [
    "UPDATE 2-Glencore slumps 30 percent as debt fears grow over commodity rout",
    "Glencore slumps 30 pct as debt fears grow over commodity rout - Reuters https://t.co/x1",
    "$GLEN: Glencore slumps 30% as debt fears grow over commodity rout",
]
OTHERS = [
    "Glencore shares hit 3-month high after refinancing key credit line",  # same company, another story
    "Anglo American slumps 20 percent as debt fears grow over commodity rout",  # same template
    "Tesco turnaround gathers pace under new CEO",
]


def test_copies_with_small_edits_join_the_first_story(client: redis.Redis) -> None:
    stories = index(client)
    [first] = stories.assign([("w0", WIRE, "en", T0)])
    assert first == StoryMatch("w0", is_copy=False)
    later = stories.assign([(f"c{i}", text, None, T0 + 60 * i) for i, text in enumerate(COPIES)])
    assert later == [StoryMatch("w0", is_copy=True)] * len(COPIES)


def test_different_stories_stay_apart(client: redis.Redis) -> None:
    stories = index(client)
    stories.assign([("w0", WIRE, "en", T0)])
    matches = stories.assign([(f"o{i}", text, "en", T0) for i, text in enumerate(OTHERS)])
    assert matches == [StoryMatch(f"o{i}", is_copy=False) for i in range(len(OTHERS))]


def test_copies_within_one_batch_find_each_other(client: redis.Redis) -> None:
    batch = [StoryText("w0", WIRE, at=T0), *(StoryText(f"c{i}", t, at=T0) for i, t in enumerate(COPIES))]
    batch.insert(2, StoryText("o0", OTHERS[2], at=T0))
    matches = index(client).assign(batch)
    assert [m.story_id for m in matches] == ["w0", "w0", "o0", "w0", "w0"]
    assert [m.is_copy for m in matches] == [False, True, False, True, True]


def test_chinese_near_copies_join(client: redis.Redis) -> None:
    stories = index(client)
    first = "中国支付通年度股东应占亏损收窄14.7%至3.08亿港元，不派末期息"
    copies = [
        "【中国支付通年度股东应占亏损收窄14.7%至3.08亿港元 不派末期息】",
        "中国支付通(08325.HK)：年度股东应占亏损收窄14.7%至3.08亿港元，不派末期息。",
    ]
    other = "中国支付通年度收入增长21.3%至5.12亿港元，拟派末期息"
    matches = stories.assign(
        [("z0", first, "zh", T0), ("z1", copies[0], None, T0), ("z2", copies[1], "zh-CN", T0)]
    )
    assert [m.story_id for m in matches] == ["z0", "z0", "z0"]
    assert stories.assign([("z3", other, "zh", T0)]) == [StoryMatch("z3", is_copy=False)]


def test_a_replayed_event_gets_the_same_story(client: redis.Redis) -> None:
    stories = index(client)
    batch = [("w0", WIRE, "en", T0), ("o0", OTHERS[2], "en", T0), ("c0", COPIES[0], "en", T0)]
    first = stories.assign(batch)
    # Replayed alone, in another order, after a later copy, with its text edited: the first answer holds.
    stories.assign([("c1", COPIES[1], "en", T0)])
    assert stories.assign(list(reversed(batch))) == list(reversed(first))
    assert stories.assign([("c0", "Something else entirely", "en", T0)]) == [first[2]]
    assert stories.assign([("w0", WIRE, "en", T0), ("w0", WIRE, "en", T0)]) == [first[0], first[0]]


def test_two_workers_agree(client: redis.Redis) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    one, two = StoryIndex(client, prefix=prefix), StoryIndex(client, prefix=prefix)
    assert one.assign([("w0", WIRE, "en", T0)]) == [StoryMatch("w0", False)]
    assert two.assign([("c0", COPIES[0], "en", T0)]) == [StoryMatch("w0", True)]
    assert one.assign([("c0", COPIES[0], "en", T0)]) == [StoryMatch("w0", True)]  # a replay on the other
    # At once, from many threads, copies of one new story: exactly one of them starts it.
    texts = [f"{OTHERS[2]} {suffix}" for suffix in ("", "- FT", "(Reuters)", "| Bloomberg")] * 4
    workers = [StoryIndex(client, prefix=prefix) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda i: workers[i % 4].assign([(f"p{i}", texts[i], "en", T0)])[0], range(len(texts)))
        )
    assert len({r.story_id for r in results}) == 1
    assert sum(not r.is_copy for r in results) == 1


def test_expiry_after_the_ttl(client: redis.Redis) -> None:
    stories = index(client, ttl_s=1)
    now = time.time()
    stories.assign([("w0", WIRE, "en", now)])
    bucket = f"{stories.prefix}:story:b:{int(now)}"
    assert client.keys(f"{stories.prefix}:*") == [bucket.encode()]  # one hash per bucket holds it all
    assert client.ttl(bucket) in (1, 2)
    time.sleep(2.2)  # 2 x ttl_s: every key is gone, and a copy starts a story of its own
    assert client.keys(f"{stories.prefix}:*") == []
    assert stories.assign([("c0", COPIES[0], "en", now)]) == [StoryMatch("c0", is_copy=False)]


def test_a_copy_is_found_in_its_bucket_and_the_one_before_only(client: redis.Redis) -> None:
    stories = index(client, ttl_s=3600)
    start = 3600 * (T0 // 3600)
    stories.assign([("w0", WIRE, "en", start + 3000)])
    assert stories.assign([("c0", COPIES[0], "en", start + 3600 + 3599)])[0].is_copy  # next bucket
    assert not stories.assign([("c1", COPIES[1], "en", start + 7200)])[0].is_copy  # two buckets on


def test_a_text_without_words_is_a_story_of_its_own(client: redis.Redis) -> None:
    stories = index(client)
    assert stories.assign([("e0", "!!!", "en", T0), ("e1", "!!!", "en", T0), ("e2", "", None, T0)]) == [
        StoryMatch("e0", False),
        StoryMatch("e1", False),
        StoryMatch("e2", False),
    ]


def test_one_script_call_per_batch(client: redis.Redis) -> None:
    stories = index(client)
    stories.assign([("w0", WIRE, "en", T0)])  # loads the script
    before = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    stories.assign([(f"c{i}", COPIES[i % 3], "en", T0) for i in range(200)])
    assert client.info("commandstats")["cmdstat_evalsha"]["calls"] == before + 1
    assert stories.assign([]) == []
