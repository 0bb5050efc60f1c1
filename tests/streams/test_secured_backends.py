"""The worker on secured backends: Kafka with SCRAM-SHA-512 over TLS, Redis with an ACL user over TLS.

The module starts its own secured servers (not the session's plain ones), with certificates from a
throwaway CA made here, and configures the worker through settings alone (FINSENTRY_KAFKA_SECURITY_*,
a rediss:// URL with the ACL user): what an operator does (docs/security-backends.md).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed

from alerts.notifiers import load_receivers
from alerts.windows import WindowStore
from finsentry.services.kafka import KafkaSecurity, KafkaServer, ScramUser
from finsentry.services.redis import RedisServer, RedisUser
from finsentry.services.tls import ThrowawayCA
from foundation.connections import aiokafka_options, kafka_python_options, redis_client
from foundation.settings import DEFAULT_HOME, Settings
from tests.streams.harness import StreamEnv, TopicReader, WorkerProcess, producer, wait_until
from tests.streams.test_worker import malformed_bytes, valid_event
from tests.tiny_model import build_tiny_bundle
from training.learning import learning

pytestmark = pytest.mark.stack

PREFIX = f"sec{uuid.uuid4().hex[:6]}"  # the topics' prefix and the Redis key prefix the ACL user owns


@dataclass
class SecuredStack:
    kafka: KafkaServer
    redis: RedisServer
    ca_cert: Path
    kafka_password: str
    redis_password: str

    def settings_env(self, kafka_password: str | None = None) -> dict[str, str]:
        """FINSENTRY_* for the worker: nothing but settings tells it about SASL, TLS and the ACL user."""
        return {
            "FINSENTRY_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "FINSENTRY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "FINSENTRY_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "FINSENTRY_KAFKA_SASL_USERNAME": "finsentry",
            "FINSENTRY_KAFKA_SASL_PASSWORD": kafka_password or self.kafka_password,
            "FINSENTRY_KAFKA_SSL_CAFILE": str(self.ca_cert),
            "FINSENTRY_REDIS_URL": self.redis.url,
            "FINSENTRY_REDIS_SSL_CA_FILE": str(self.ca_cert),
            "FINSENTRY_REDIS_PREFIX": PREFIX,
        }

    def settings(self, **overrides: str) -> Settings:
        values = {k.removeprefix("FINSENTRY_").lower(): v for k, v in self.settings_env().items()}
        return Settings(**{**values, **overrides})


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredStack]:
    folder = tmp_path_factory.mktemp("secured")
    ca = ThrowawayCA(folder / "ca")
    kafka_password, redis_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18) + "@/:%"
    kafka = KafkaServer(
        DEFAULT_HOME,
        folder / "kafka",
        heap="512m",
        security=KafkaSecurity(ca.issue("kafka"), [ScramUser("finsentry", kafka_password)]),
    )
    server = RedisServer(
        folder / "redis",
        tls=ca.issue("redis"),
        user=RedisUser("finsentry", redis_password, keys=f"{PREFIX}:*"),
    )
    server.start()
    try:
        kafka.start()
        try:
            yield SecuredStack(kafka, server, ca.cert, kafka_password, redis_password)
        finally:
            kafka.stop()
    finally:
        server.stop()


def test_worker_scores_on_scram_tls_kafka_and_acl_tls_redis(secured: SecuredStack, tmp_path: Path) -> None:
    settings = secured.settings(home=str(tmp_path / "trainer"), topic_models=f"{PREFIX}.models.updated")
    # What the API and the trainer build from settings: the registry, announcing promotions on Kafka.
    registry = learning(settings).registry
    registry.register(build_tiny_bundle(tmp_path / "v1", seed=1, version="tiny-1"), "champion")
    env = StreamEnv(
        secured.kafka.bootstrap,
        secured.redis.url,
        registry.model_dir,
        tmp_path / "worker",
        prefix=PREFIX,
        settings_env=secured.settings_env(),
        kafka_options=kafka_python_options(settings),
    )
    env.create_topics(partitions=2)
    scored = TopicReader(env.bootstrap, env.topic("events.scored"), **env.kafka_options)
    dlq = TopicReader(env.bootstrap, env.topic("events.dlq"), **env.kafka_options)
    out = producer(env.bootstrap, **env.kafka_options)
    worker = WorkerProcess(env, "worker", model_watch_s="0")  # a new model comes by announcement only
    sent = {f"evt-{i}" for i in range(20)}
    try:
        for i in range(20):
            out.send(
                env.topic("news.raw"), key=f"evt-{i}".encode(), value=json.dumps(valid_event(i)).encode()
            )
        out.send(env.topic("news.raw"), key=b"evt-bad", value=malformed_bytes(99, "missing_field"))
        out.flush()

        def scored_ids() -> set[str]:
            return {v["id"] for v in scored.values()}

        wait_until(lambda: scored_ids() >= sent, 120, "every valid event scored", scored.poll)
        wait_until(lambda: bool(dlq.records), 30, "the invalid event dead-lettered", dlq.poll)

        registry.register(build_tiny_bundle(tmp_path / "v2", seed=2, version="tiny-2"), "champion")
        wait_until(
            lambda: any(
                e.get("event") == "model announcement received" and e.get("version") == "tiny-2"
                for e in worker.log_events()
            ),
            60,
            "the worker to hear of the promotion over SASL_SSL",
        )
    finally:
        worker.stop()
        out.close()
        scored.close()
        dlq.close()

    assert scored_ids() == sent
    [letter] = dlq.values()
    assert letter["error_code"] == "missing_field"

    # The windows were written under the ACL user, and read back as it.
    store = WindowStore(redis_client(settings), prefix=PREFIX)
    now = datetime.fromisoformat("2026-11-29T09:30:30+00:00").timestamp()
    windows = store.read_many(["global:all", "source:wire", "source:forum"], 3_600, now)
    assert windows["global:all"].count == len(sent)
    assert windows["source:forum"].count + windows["source:wire"].count == len(sent)

    log = worker.log_path.read_text(errors="replace")
    assert "batch" in log
    for secret in (secured.kafka_password, secured.redis_password, quote(secured.redis_password, safe="")):
        assert secret not in log, "a password reached the worker's log"


def test_kafka_receiver_delivers_alerts_over_scram_tls(secured: SecuredStack, tmp_path: Path) -> None:
    settings = secured.settings()
    topic = f"{PREFIX}.alerts"
    receivers = tmp_path / "receivers.yaml"
    receivers.write_text(f"receivers:\n  bus:\n    type: kafka\n    topic: {topic}\n")
    # What `finsentry dispatch` does with a Kafka receiver.
    [notifier] = load_receivers(receivers, settings.kafka_bootstrap, kafka_python_options(settings)).values()
    assert secured.kafka_password not in repr(notifier)
    alert = {"alert_id": "a-1", "rule": "surge", "status": "firing"}
    assert notifier.send(1, {"kind": "firing", "alerts": [alert]}).ok
    reader = TopicReader(settings.kafka_bootstrap, topic, **kafka_python_options(settings))
    try:
        wait_until(lambda: bool(reader.records), 30, "the alert on its topic", reader.poll)
    finally:
        reader.close()
    assert [r.key for r in reader.records] == [b"a-1"]


def test_broker_refuses_a_wrong_scram_password_and_plaintext(secured: SecuredStack) -> None:
    async def connect(settings: Settings) -> None:
        conn = await create_conn("127.0.0.1", secured.kafka.port, **aiokafka_options(settings))
        conn.close()

    asyncio.run(connect(secured.settings()))  # the right password gets in: the refusals below are real
    with pytest.raises(SaslAuthenticationFailed):
        asyncio.run(connect(secured.settings(kafka_sasl_password="not-the-password")))
    with pytest.raises(SaslAuthenticationFailed):
        asyncio.run(connect(secured.settings(kafka_sasl_username="mallory")))
    with pytest.raises(KafkaConnectionError):  # no TLS, no SASL: the listener speaks neither
        asyncio.run(connect(Settings(kafka_bootstrap=secured.kafka.bootstrap)))


def test_redis_refuses_plain_connections_and_the_default_user(secured: SecuredStack) -> None:
    port, ca = secured.redis.port, str(secured.ca_cert)
    assert redis_client(secured.settings()).ping()
    with pytest.raises(redis.ConnectionError):  # TLS only: a plain connection is dropped
        redis.Redis(host="127.0.0.1", port=port, socket_timeout=5).ping()
    with pytest.raises(redis.AuthenticationError):  # over TLS, but as the default user (switched off)
        redis.Redis.from_url(f"rediss://127.0.0.1:{port}/0", ssl_ca_certs=ca, socket_timeout=5).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(f"rediss://default:x@127.0.0.1:{port}/0", ssl_ca_certs=ca).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(f"rediss://finsentry:wrong@127.0.0.1:{port}/0", ssl_ca_certs=ca).ping()
    with pytest.raises(redis.ConnectionError):  # a server certificate from another CA is not believed
        redis.Redis.from_url(secured.redis.url, socket_timeout=5).ping()
    client = redis_client(secured.settings())
    with pytest.raises(redis.exceptions.NoPermissionError):  # the ACL user's keys are its prefix's only
        client.set("elsewhere", 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.flushdb()
