"""The one place where settings become client options: Kafka (kafka-python, aiokafka, faust) and Redis.

Every process builds its clients from these, so a secured deployment (SASL_SSL Kafka, TLS Redis with an
ACL user) is set once, in settings (docs/security-backends.md). PostgreSQL needs nothing here: its TLS
options ride in database_url's query (`?sslmode=verify-full&sslrootcert=...`) and reach the driver as
they are (foundation/db.py's make_engine).

The Kafka options carry the SASL password in clear, as the client libraries want it: pass them to a
client's constructor, never to a log line.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from foundation.settings import Settings

if TYPE_CHECKING:
    import redis
    from faust.types.auth import CredentialsT


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of every Kafka client, or None when the protocol has no TLS.

    Verifies the brokers' certificates and host names against kafka_ssl_cafile (else the system's CAs),
    and presents kafka_ssl_certfile where the brokers ask for a client certificate.
    """
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH,
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
    )
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    return context


def _kafka_security(settings: Settings) -> dict[str, Any]:
    """The options kafka-python and aiokafka name alike."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = kafka_ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return options


def kafka_python_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for KafkaProducer, KafkaConsumer and KafkaAdminClient (kafka-python): the
    security ones only; bootstrap_servers and the rest stay with each caller."""
    return _kafka_security(settings)


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer and AIOKafkaConsumer: the security ones only."""
    return _kafka_security(settings)


def faust_broker_credentials(settings: Settings) -> CredentialsT | None:
    """faust.App's broker_credentials: faust hands them to every aiokafka client it makes (consumer,
    producer, and the topic creation on their connections), whatever the `kafka://` URL says."""
    import faust

    protocol = settings.kafka_security_protocol
    context = kafka_ssl_context(settings)
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    # SASLCredentials is SASL_SSL when it has a context, else SASL_PLAINTEXT.
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=context,
    )


def redis_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for redis.Redis.from_url(settings.redis_url, ...): the timeouts, and the CA
    file for a rediss:// URL. The ACL user and password come from the URL itself."""
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout_s,  # a frozen server is an outage, not a hang
        "socket_connect_timeout": settings.redis_timeout_s,
    }
    if settings.redis_url.startswith("rediss://") and settings.redis_ssl_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_ssl_ca_file)
    return options


def redis_client(settings: Settings, **overrides: Any) -> redis.Redis:
    """A client of the configured Redis; `overrides` replace options (a shorter connect timeout)."""
    import redis

    return redis.Redis.from_url(settings.redis_url, **{**redis_options(settings), **overrides})
