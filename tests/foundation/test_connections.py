"""Settings into client options (Kafka, Redis, PostgreSQL's sslmode), and no password in a log line."""

from __future__ import annotations

import logging
import ssl
import sys
from pathlib import Path

import faust
import pytest
from pydantic import ValidationError

from finsentry.services.tls import ThrowawayCA
from foundation.connections import (
    aiokafka_options,
    faust_broker_credentials,
    kafka_python_options,
    kafka_ssl_context,
    redis_client,
    redis_options,
)
from foundation.db import make_engine
from foundation.logs import JsonFormatter, KeyValueFormatter, without_credentials
from foundation.settings import Settings

PASSWORD = "s3cr3t-Pa55"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ThrowawayCA(tmp_path_factory.mktemp("ca")).ensure().cert


def sasl_ssl(ca: Path, **more: object) -> Settings:
    return Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="finsentry",
        kafka_sasl_password=PASSWORD,
        kafka_ssl_cafile=ca,
        **more,
    )


def test_plaintext_is_the_default_and_needs_nothing() -> None:
    settings = Settings()
    assert kafka_python_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert aiokafka_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_broker_credentials(settings) is None
    assert kafka_ssl_context(settings) is None


def test_sasl_ssl_options_verify_the_broker_against_the_ca(ca: Path) -> None:
    settings = sasl_ssl(ca)
    options = kafka_python_options(settings)
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "finsentry",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "finsentry throwaway CA"),),)]
    assert aiokafka_options(settings).keys() == kafka_python_options(settings).keys()

    credentials = faust_broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("finsentry", PASSWORD)
    assert PASSWORD not in repr(credentials)


def test_sasl_without_tls_and_tls_without_sasl(ca: Path) -> None:
    plain_sasl = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="u",
        kafka_sasl_password=PASSWORD,
    )
    assert "ssl_context" not in kafka_python_options(plain_sasl)
    credentials = faust_broker_credentials(plain_sasl)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_PLAINTEXT"

    tls_only = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=ca)
    assert set(kafka_python_options(tls_only)) == {"security_protocol", "ssl_context"}
    assert isinstance(faust_broker_credentials(tls_only), faust.SSLCredentials)


def test_the_password_never_shows_in_the_settings(ca: Path) -> None:
    settings = sasl_ssl(ca)
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)
    assert PASSWORD not in settings.model_dump_json()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs kafka_sasl_username and kafka_sasl_password"),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u"},
            "needs kafka_sasl_username and kafka_sasl_password",
        ),
        ({"kafka_ssl_cafile": "/etc/ca.pem"}, "does not use TLS"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/etc/client.key"},
            "kafka_ssl_keyfile needs kafka_ssl_certfile",
        ),
        ({"kafka_security_protocol": "SASL_TLS"}, "kafka_security_protocol"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
    ],
)
def test_half_a_security_setting_is_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, ca: Path) -> None:
    monkeypatch.setenv("FINSENTRY_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FINSENTRY_KAFKA_SASL_USERNAME", "finsentry")
    monkeypatch.setenv("FINSENTRY_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("FINSENTRY_KAFKA_SSL_CAFILE", str(ca))
    monkeypatch.setenv("FINSENTRY_REDIS_SSL_CA_FILE", str(ca))
    settings = Settings()
    assert settings.kafka_sasl_password.get_secret_value() == PASSWORD
    assert settings.kafka_ssl_cafile == ca == settings.redis_ssl_ca_file


def test_redis_gets_the_ca_only_over_tls(ca: Path) -> None:
    plain = Settings(redis_url="redis://127.0.0.1:6379/0", redis_ssl_ca_file=ca, redis_timeout_s=2)
    assert redis_options(plain) == {"socket_timeout": 2, "socket_connect_timeout": 2}
    tls = Settings(redis_url="rediss://finsentry:pw@127.0.0.1:6380/0", redis_ssl_ca_file=ca)
    assert redis_options(tls)["ssl_ca_certs"] == str(ca)
    kwargs = redis_client(tls, socket_connect_timeout=1).connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["ssl_ca_certs"]) == ("finsentry", "pw", str(ca))
    assert kwargs["socket_connect_timeout"] == 1


def test_make_engine_passes_sslmode_through_to_the_driver() -> None:
    url = (
        "postgresql+psycopg://finsentry:pw@db.example:5432/finsentry"
        "?sslmode=verify-full&sslrootcert=/etc/finsentry/pg-ca.pem"
    )
    engine = make_engine(url)  # no connection yet
    _, kwargs = engine.dialect.create_connect_args(engine.url)
    assert kwargs["sslmode"] == "verify-full"
    assert kwargs["sslrootcert"] == "/etc/finsentry/pg-ca.pem"


@pytest.mark.parametrize(
    "url",
    [
        "rediss://finsentry:s3cr3t-Pa55@cache.example:6380/0",
        "rediss://finsentry:s3cr3t%40Pa55@cache.example:6380/0",
        "rediss://finsentry:s3cr3t@Pa55@cache.example:6380/0",  # an unescaped @ in the password
        "postgresql+psycopg://finsentry:s3cr3t-Pa55@db.example/fs?sslmode=verify-full",
    ],
)
def test_urls_lose_their_credentials_in_log_lines(url: str) -> None:
    assert "s3cr3t" not in without_credentials(f"connecting to {url}")
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "using %s", (url,), None)
    record.redis_url = url
    try:
        raise ConnectionError(f"cannot reach {url}")
    except ConnectionError:
        record.exc_info = sys.exc_info()
    for formatter in (JsonFormatter(), KeyValueFormatter()):
        line = formatter.format(record)
        assert "s3cr3t" not in line and "Pa55" not in line  # the message, the field, the traceback
        assert "cannot reach" in line
