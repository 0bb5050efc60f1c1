"""The engine on tiny random bundles: backends agree, order holds, corrupt bundles are refused."""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference import Bundle, BundleError, InferenceEngine
from inference.backends import OnnxBackend
from inference.engine import plan_batches
from tests.tiny_model import build_tiny_bundle

TEXTS = [
    "Northwind Bank misses profit estimates",
    "Oil jumps after OPEC+ cuts output",
    "平安银行发布业绩预告，净利润同比下降30%",
    "Fed holds rates",
    "A much longer sentence about quarterly revenue, margins, guidance, buybacks and the dividend outlook "
    "that keeps going for a while so that the batch has very different lengths in it",
] * 7


def probabilities(engine: InferenceEngine, texts: list[str]) -> np.ndarray:
    return np.array(
        [list(p.sentiment_probs.values()) + list(p.topic_probs.values()) for p in engine.predict(texts)]
    )


def test_onnx_fp32_and_int8_agree_with_torch(tiny_bundle: Path) -> None:
    reference = probabilities(InferenceEngine(tiny_bundle, backend="torch", device="cpu"), TEXTS)
    fp32 = probabilities(InferenceEngine(tiny_bundle, backend="onnx-fp32"), TEXTS)
    assert np.abs(reference - fp32).max() < 1e-4
    int8 = InferenceEngine(tiny_bundle, backend="onnx-int8").predict(TEXTS)
    torch_labels = [
        p.sentiment for p in InferenceEngine(tiny_bundle, backend="torch", device="cpu").predict(TEXTS)
    ]
    agreement = np.mean([p.sentiment == t for p, t in zip(int8, torch_labels, strict=True)])
    assert agreement >= 0.9


def test_batched_predictions_keep_input_order(tiny_bundle: Path) -> None:
    engine = InferenceEngine(tiny_bundle, backend="onnx-fp32", batch_size=4)
    batched = probabilities(engine, TEXTS)
    one_by_one = np.vstack([probabilities(engine, [text]) for text in TEXTS])
    assert np.abs(batched - one_by_one).max() < 1e-4


def test_a_long_text_no_longer_pads_the_short_ones() -> None:
    lengths = [6] * 31 + [120]
    batches = plan_batches(lengths, batch_size=32, token_budget=2048, call_cost=8)
    assert batches == [list(range(31)), [31]], "31 short texts together, the long one alone"
    assert plan_batches(lengths, batch_size=32, token_budget=0, call_cost=None) == [list(range(32))]


def test_calls_are_cut_where_padding_costs_more_than_a_call() -> None:
    lengths = [10] * 8 + [40] * 8
    assert plan_batches(lengths, 32, 0, call_cost=64) == [list(range(8)), list(range(8, 16))]
    # 8 texts padded from 10 to 40 tokens cost 240 padded tokens: cheaper than a call of 1,000.
    assert plan_batches(lengths, 32, 0, call_cost=1000) == [list(range(16))]


def _least_cost(widths: list[int], batch_size: int, budget: int, call_cost: int) -> float:
    """Every way to cut the sorted widths into calls, tried one by one."""
    best = float("inf")
    for cuts in itertools.product((False, True), repeat=max(0, len(widths) - 1)):
        calls, current = [], [widths[0]]
        for width, cut in zip(widths[1:], cuts, strict=True):
            if cut:
                calls.append(current)
                current = []
            current.append(width)
        calls.append(current)
        allowed = all(
            len(c) <= batch_size and (not budget or len(c) == 1 or len(c) * max(c) <= budget) for c in calls
        )
        if allowed:
            best = min(best, sum(call_cost + len(c) * max(c) for c in calls))
    return best


@given(
    lengths=st.lists(st.integers(1, 300), min_size=1, max_size=9),
    batch_size=st.integers(1, 8),
    budget=st.sampled_from([0, 64, 512]),
    call_cost=st.sampled_from([0, 16, 64, 256]),
)
def test_plan_batches_finds_the_least_costly_cuts(
    lengths: list[int], batch_size: int, budget: int, call_cost: int
) -> None:
    batches = plan_batches(lengths, batch_size, budget, call_cost)
    cost = sum(call_cost + len(b) * max(lengths[i] for i in b) for b in batches)
    assert cost == _least_cost(sorted(lengths), batch_size, budget, call_cost)


@given(
    lengths=st.lists(st.integers(1, 512), max_size=200),
    batch_size=st.integers(1, 64),
    budget=st.sampled_from([0, 64, 512, 2048]),
    call_cost=st.sampled_from([None, 0, 64]),
)
def test_plan_batches_cover_every_text_once_within_both_limits(
    lengths: list[int], batch_size: int, budget: int, call_cost: int | None
) -> None:
    batches = plan_batches(lengths, batch_size, budget, call_cost)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        widths = [lengths[i] for i in batch]
        assert widths == sorted(widths)
        if budget and len(batch) > 1:
            assert len(batch) * max(widths) <= budget


def test_token_budget_changes_the_calls_not_the_answers(
    tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fp32: dynamic int8 scales activations per call, so its answers move a little with the batch.
    whole = probabilities(InferenceEngine(tiny_bundle, "onnx-fp32", batch_size=64, token_budget=0), TEXTS)
    budgeted = InferenceEngine(tiny_bundle, "onnx-fp32", batch_size=64, token_budget=100)
    calls: list[tuple[int, ...]] = []
    run = OnnxBackend.__call__

    def counting(self: OnnxBackend, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(ids.shape)
        return run(self, ids, mask)

    monkeypatch.setattr(OnnxBackend, "__call__", counting)
    assert np.abs(probabilities(budgeted, TEXTS) - whole).max() < 1e-5
    assert len(calls) > 1 and all(rows * width <= 100 or rows == 1 for rows, width in calls)


def test_onnx_calls_run_side_by_side_in_one_thread_lanes(
    tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_lane = InferenceEngine(tiny_bundle, "onnx-int8", threads=1, batch_size=2)
    two_lanes = InferenceEngine(tiny_bundle, "onnx-int8", threads=2, batch_size=2)
    assert isinstance(two_lanes.backend, OnnxBackend) and two_lanes.backend.lanes == 2
    assert two_lanes.backend.session.get_session_options().intra_op_num_threads == 1
    texts = [f"{text} {'again ' * k}" for k, text in enumerate(TEXTS * 4)]
    expected = one_lane.predict(texts)
    threads: set[str] = set()
    run = OnnxBackend.__call__

    def recording(self: OnnxBackend, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        threads.add(threading.current_thread().name)
        time.sleep(0.01)  # long enough that one lane cannot take every call before the other starts
        return run(self, ids, mask)

    monkeypatch.setattr(OnnxBackend, "__call__", recording)
    assert two_lanes.predict(texts) == expected, "the same scores, each back at its own text"
    assert len(threads) == 2 and all(name.startswith("onnx-lane") for name in threads)


def test_predictions_carry_labels_and_version(tiny_bundle: Path) -> None:
    bundle = Bundle.open(tiny_bundle)
    prediction = InferenceEngine(tiny_bundle).predict(["Shares fall"])[0]
    assert prediction.sentiment in bundle.sentiment_labels
    assert prediction.topic in bundle.topic_labels
    assert prediction.model_version == bundle.version
    assert abs(sum(prediction.sentiment_probs.values()) - 1) < 1e-3
    assert 0 <= prediction.margin <= 1


def test_corrupt_bundle_is_refused_and_the_old_model_serves_on(tiny_bundle: Path, tmp_path: Path) -> None:
    engine = InferenceEngine(tiny_bundle)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    onnx = broken / "model.int8.onnx"
    onnx.write_bytes(onnx.read_bytes()[: onnx.stat().st_size // 2])
    with pytest.raises(BundleError, match="checksum"):
        Bundle.open(broken)
    with pytest.raises(BundleError):
        engine.reload(broken)
    (broken / "manifest.json").unlink()
    with pytest.raises(BundleError, match="not a model bundle"):
        engine.reload(broken)
    assert engine.version == Bundle.open(tiny_bundle).version
    assert len(engine.predict(TEXTS)) == len(TEXTS)


def test_hot_reload_under_load_loses_and_repeats_nothing(tiny_bundle: Path, tmp_path: Path) -> None:
    second = build_tiny_bundle(tmp_path / "second", seed=2, version="tiny-2")
    engine = InferenceEngine(tiny_bundle, batch_size=8)
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def serve() -> None:
        n = 0
        while not stop.is_set():
            batch = list(range(n, n + 8))
            predictions = engine.predict([f"event {i}: {TEXTS[i % len(TEXTS)]}" for i in batch])
            results.extend((i, p.model_version) for i, p in zip(batch, predictions, strict=True))
            n += 8

    server = threading.Thread(target=serve)
    server.start()
    while len(results) < 200:
        threading.Event().wait(0.01)
    assert engine.reload(second) == "tiny-2"
    served_at_switch = len(results)
    while len(results) < served_at_switch + 80:  # the new model serves a while before the end
        threading.Event().wait(0.01)
    stop.set()
    server.join()

    ids = [i for i, _ in results]
    assert ids == list(range(len(ids))), "every event scored once, in order"
    versions = [v for _, v in results]
    switch = versions.index("tiny-2")
    assert set(versions[:switch]) == {"tiny-1"} and set(versions[switch:]) == {"tiny-2"}


def test_dynamic_batcher_gathers_concurrent_requests(tiny_bundle: Path) -> None:
    import asyncio

    from inference.batcher import DynamicBatcher

    engine = InferenceEngine(tiny_bundle, backend="onnx-fp32")
    texts = [f"{TEXTS[i % len(TEXTS)]} #{i}" for i in range(100)]
    direct = engine.predict(texts)

    async def scenario() -> tuple[list, int]:
        async with DynamicBatcher(engine, max_batch=16, max_wait_s=0.05) as batcher:
            results = await asyncio.gather(*(batcher.submit(t) for t in texts))
            return results, batcher.calls

    results, calls = asyncio.run(scenario())
    assert calls <= 100 // 16 + 2, "concurrent requests share engine calls"
    for got, want in zip(results, direct, strict=True):
        assert got.sentiment == want.sentiment and got.topic == want.topic
