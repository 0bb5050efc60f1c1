"""docker-compose.yml cannot run here (no Docker engine); its wiring is checked against the settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from foundation.settings import Settings

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def test_every_finsentry_variable_is_a_real_setting() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"kafka", "redis", "postgres", "worker", "dispatcher", "api", "trainer"} <= set(services)
    seen = 0
    for name, service in services.items():
        for variable in service.get("environment", {}):
            if variable.startswith("FINSENTRY_"):
                setting = variable.removeprefix("FINSENTRY_").lower()
                assert setting in Settings.model_fields, f"{name}: {variable} is not a finsentry setting"
                seen += 1
    assert seen >= 8, "the worker gets its settings from the environment"


def test_kafka_runs_kraft_without_zookeeper() -> None:
    kafka = yaml.safe_load(COMPOSE.read_text())["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:4")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert not any("ZOOKEEPER" in key for key in kafka["environment"])


def test_compose_settings_load(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    worker = yaml.safe_load(COMPOSE.read_text())["services"]["worker"]
    for variable, value in worker["environment"].items():
        monkeypatch.setenv(variable, str(value).replace("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}", "pw"))
    settings = Settings()
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.max_batch == 256
    assert settings.effective_database_url.startswith("postgresql+psycopg://")


def test_trainer_api_and_workers_share_the_model_registry() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    env = compose["x-finsentry-env"]
    services = compose["services"]
    for name in ("worker", "api", "trainer"):
        mounts = {volume.split(":")[1]: volume for volume in services[name]["volumes"]}
        assert "/models" in mounts, f"{name} sees the registry volume"
    for setting in ("FINSENTRY_MODEL_DIR", "FINSENTRY_REGISTRY_DIR"):
        assert env[setting].startswith("/models/"), setting
    assert services["worker"]["volumes"][0].endswith(":ro"), "workers only read models"
