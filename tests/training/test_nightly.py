"""The nightly job on a tiny model and a real database: promote, reject, fail safe, skip, lock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from inference import Bundle
from labels.store import LabelStore, NewLabel
from tests.tiny_model import build_tiny_base
from training import nightly
from training.lock import lease
from training.nightly import NightlyConfig, NightlyTrainer, gate
from training.registry import Registry, RegistryError, UnknownModel
from training.train import TrainingError

WORDS = {
    ("earnings", "positive"): "beats estimates record profit raises guidance",
    ("earnings", "negative"): "misses estimates loss warning cuts guidance",
    ("macro", "neutral"): "inflation data jobs report unchanged rates",
    ("macro", "negative"): "recession fears contraction slump",
}


def labels(start: int, n: int, by: str = "analyst") -> list[NewLabel]:
    rows = []
    for i in range(start, start + n):
        (topic, sentiment), words = list(WORDS.items())[i % len(WORDS)]
        rows.append(NewLabel(f"{words} company {i}", by, "api", topic=topic, sentiment=sentiment))
    return rows


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("base") / "tiny-base")


@pytest.fixture()
def parts(sql_engine: Engine, tmp_path: Path, tiny_base: Path) -> tuple[NightlyTrainer, Registry, LabelStore]:
    store = LabelStore(sql_engine, frozen_percent=20)
    announced: list[tuple[str, str | None]] = []
    registry = Registry(
        sql_engine,
        tmp_path / "registry",
        tmp_path / "current",
        announce=lambda model, previous: announced.append((model.version, previous)),
    )
    registry.announced = announced  # type: ignore[attr-defined]
    config = NightlyConfig(base_model=tiny_base, min_new_labels=50, epochs=3, lr=1e-3, min_frozen_per_head=10)
    return NightlyTrainer(sql_engine, registry, store, config), registry, store


def test_gate_promotes_only_without_a_drop() -> None:
    old = {"topic": {"macro_f1": 0.80}, "sentiment": {"macro_f1": 0.70}}
    assert gate({"topic": {"macro_f1": 0.82}, "sentiment": {"macro_f1": 0.70}}, old, 0.01).promote
    small_drop = gate({"topic": {"macro_f1": 0.85}, "sentiment": {"macro_f1": 0.695}}, old, 0.01)
    assert small_drop.promote, "a head may slip within tolerance when the mean rises"
    big_drop = gate({"topic": {"macro_f1": 0.95}, "sentiment": {"macro_f1": 0.65}}, old, 0.01)
    assert not big_drop.promote and "sentiment macro-F1 drops by 0.0500" in big_drop.reason
    mean_drop = gate({"topic": {"macro_f1": 0.795}, "sentiment": {"macro_f1": 0.70}}, old, 0.01)
    assert not mean_drop.promote and "mean macro-F1 drops" in mean_drop.reason
    assert not gate({}, old, 0.01).promote


def test_nights_promote_skip_and_keep_the_champion_on_failure(
    parts: tuple[NightlyTrainer, Registry, LabelStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer, registry, store = parts
    store.add(labels(0, 200))
    first = trainer.run()
    assert first.status == "promoted", first.detail
    champion = registry.champion()
    assert champion is not None and champion.version == first.version
    assert Bundle.open(registry.model_dir).version == first.version, "the serving link points at it"
    assert registry.announced == [(first.version, None)]  # type: ignore[attr-defined]

    assert trainer.run().status == "skipped", "no new labels since the champion"
    store.add(labels(200, 20))
    trainable = sum(not store.is_frozen(label.text) for label in labels(200, 20))
    few = trainer.run()
    assert few.status == "skipped" and f"{trainable} new labels (< 50)" in few.detail

    def nan_loss(*_: object, **__: object) -> None:
        raise TrainingError("loss became nan at epoch 1, batch 3")

    monkeypatch.setattr("training.train.train", nan_loss)
    store.add(labels(220, 100))
    failed = trainer.run()
    assert failed.status == "failed" and "nan" in failed.detail
    assert registry.champion().version == first.version  # type: ignore[union-attr]
    assert Bundle.open(registry.model_dir).version == first.version
    runs = registry.runs()
    assert runs[0].status == "failed" and "nan" in runs[0].detail
    hidden = [p for p in registry.registry_dir.iterdir() if p.name.startswith(".")]
    assert not hidden, "no half-written bundle"


def test_second_night_is_judged_against_the_champion_on_the_frozen_set(
    parts: tuple[NightlyTrainer, Registry, LabelStore],
) -> None:
    trainer, registry, store = parts
    store.add(labels(0, 200))
    first = trainer.run()
    store.add(labels(200, 120))
    second = trainer.run()
    assert second.status in ("promoted", "rejected")
    model = registry.get(second.version)  # type: ignore[arg-type]
    assert model.parent == first.version
    assert model.data["new_labels"] == len(store.new_examples(registry.get(first.version).trained_through))
    assert model.data["replayed"] > 0, "older labels are replayed"
    assert set(model.metrics["frozen"]) == {"topic", "sentiment"}
    assert model.metrics["parent_frozen"]["topic"]["rows"] == model.metrics["frozen"]["topic"]["rows"]
    assert model.decision
    expected = "champion" if second.status == "promoted" else "rejected"
    assert model.status == expected


def test_a_trainer_that_finds_the_lock_taken_skips_and_says_who_holds_it(
    parts: tuple[NightlyTrainer, Registry, LabelStore], sql_engine: Engine
) -> None:
    trainer, _, store = parts
    store.add(labels(0, 200))
    with lease(sql_engine, nightly.LOCK, timedelta(minutes=5), holder="other-host:4242") as held:
        assert held.acquired
        result = trainer.run()
    assert result.status == "skipped" and "other-host:4242" in result.detail
    assert trainer.run().status == "promoted", "the lock is free again once released"


CHINESE = {
    ("earnings", "positive"): "业绩 大涨 超预期 利润 创新高",
    ("earnings", "negative"): "业绩 亏损 预警 下调 指引",
    ("macro", "neutral"): "通胀 数据 就业 报告 利率 不变",
    ("macro", "negative"): "衰退 担忧 收缩 下滑",
}


def chinese_labels(start: int, n: int, declared: bool) -> list[NewLabel]:
    """Chinese labels, half of them with `language` set and half found by their script."""
    rows = []
    for i in range(start, start + n):
        (topic, sentiment), words = list(CHINESE.items())[i % len(CHINESE)]
        language = "zh-CN" if declared and i % 2 else None
        rows.append(NewLabel(f"{words} 公司{i}", "analyst", "api", topic, sentiment, language=language))
    return rows


def test_each_language_trains_promotes_and_rolls_back_on_its_own(
    sql_engine: Engine, tmp_path: Path, tiny_base: Path
) -> None:
    store = LabelStore(sql_engine, frozen_percent=20)
    registries = {
        lang: Registry(sql_engine, tmp_path / "registry", tmp_path / f"current-{lang}", language=lang)
        for lang in ("en", "zh")
    }
    config = NightlyConfig(base_model=tiny_base, min_new_labels=50, epochs=2, lr=1e-3, min_frozen_per_head=10)
    trainers = {
        lang: NightlyTrainer(sql_engine, registries[lang], store, replace(config, language=lang))
        for lang in registries
    }
    store.add(labels(0, 160) + chinese_labels(0, 40, declared=True))
    english = trainers["en"].run()
    chinese = trainers["zh"].run()
    assert english.status == "promoted"
    assert chinese.status == "skipped", "40 Chinese labels (minus the frozen ones) are under 50"
    assert registries["en"].get(english.version).data["new_labels"] == sum(  # type: ignore[arg-type]
        not store.is_frozen(label.text) for label in labels(0, 160)
    ), "the English night saw no Chinese label"

    store.add(chinese_labels(40, 120, declared=False))
    chinese = trainers["zh"].run()
    assert chinese.status == "promoted", chinese.detail
    zh_champion = registries["zh"].champion()
    assert zh_champion is not None and zh_champion.language == "zh"
    assert Bundle.open(tmp_path / "current-zh").language == "zh"
    assert registries["en"].champion().version == english.version, "the English champion serves on"  # type: ignore[union-attr]
    assert [m.version for m in registries["zh"].models()] == [chinese.version]

    with pytest.raises(RegistryError, match="serves zh; this is the en registry"):
        registries["en"].register(zh_champion.bundle_path, "challenger")
    with pytest.raises(UnknownModel):
        registries["en"].promote(chinese.version)
    with pytest.raises(RegistryError, match="no earlier champion"):
        registries["zh"].rollback()
