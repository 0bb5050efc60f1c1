import gc

from prometheus_client import REGISTRY

from foundation import metrics


def _full_collections() -> float:
    return REGISTRY.get_sample_value("finsentry_gc_pause_seconds_count", {"generation": "2"}) or 0.0


def test_every_full_collection_is_timed_until_the_hook_is_removed() -> None:
    before = _full_collections()
    hook = metrics.time_gc_pauses()
    try:
        gc.collect()
        gc.collect()
        assert _full_collections() == before + 2
        paused = REGISTRY.get_sample_value("finsentry_gc_pause_seconds_sum", {"generation": "2"})
        assert paused is not None and paused > 0
    finally:
        gc.callbacks.remove(hook)
    gc.collect()
    assert _full_collections() == before + 2
