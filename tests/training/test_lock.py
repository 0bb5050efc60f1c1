"""The trainer lease: held past its ttl while the heartbeat renews it, lost when another holder takes it."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from training.lock import LockRow, lease, try_acquire


def test_the_heartbeat_keeps_the_lease_past_its_ttl(sql_engine: Engine) -> None:
    ttl = timedelta(seconds=1.5)
    with lease(sql_engine, "night", ttl, holder="a:1") as held:
        assert held.acquired
        for _ in range(8):  # 4 s, well past the ttl
            time.sleep(0.5)
            other = try_acquire(sql_engine, "night", "b:2", ttl)
            assert not other.acquired and other.holder == "a:1"
        assert not held.lost.is_set()
    assert try_acquire(sql_engine, "night", "b:2", ttl).acquired, "released on exit"


def test_a_lease_taken_by_another_holder_is_marked_lost(sql_engine: Engine) -> None:
    ttl = timedelta(seconds=1.5)
    with lease(sql_engine, "night", ttl, holder="a:1") as held:
        # As if our heartbeats had not got through and another trainer took the lapsed lease.
        with Session(sql_engine) as session, session.begin():
            session.execute(update(LockRow).where(LockRow.name == "night").values(holder="b:2"))
        deadline = time.monotonic() + 5
        while not held.lost.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert held.lost.is_set()
    assert try_acquire(sql_engine, "night", "c:3", ttl).holder == "b:2", "our exit released nothing of b's"
