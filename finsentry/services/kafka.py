"""Apache Kafka in KRaft mode, single node, from Maven Central jars run with the machine's Java.

Plain by default. With `security` its one client listener is SASL_SSL: TLS with a certificate from
finsentry.services.tls, and SCRAM users written into the metadata log when the storage is formatted.
The controller listener stays PLAINTEXT on loopback; brokers talk to each other over SASL_SSL.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from finsentry.services.process import ServerProcess, ServiceError, free_port
from finsentry.services.tls import ServerCertificate

KAFKA_VERSION = "4.1.1"

LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{ISO8601}} %-5p [%c{{1}}] %m%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
"""


def ensure_jars(cache: Path) -> Path:
    """The folder of Kafka's jars, fetched once with Maven into the cache (outside the repository)."""
    libs = cache / f"kafka-{KAFKA_VERSION}" / "libs"
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file():
        return libs
    if shutil.which("mvn") is None:
        raise ServiceError("Maven (mvn) is needed once to fetch Apache Kafka's jars from Maven Central")
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".libs.", dir=libs.parent))
    pom = resources.files("finsentry.services").joinpath("kafka-pom.xml")
    with resources.as_file(pom) as pom_path:
        result = subprocess.run(  # noqa: S603 - a fixed argv of our own tools, no shell
            [  # noqa: S607 - mvn from PATH, as ./dev installs it
                "mvn",
                "-q",
                "-B",
                "-f",
                str(pom_path),
                "dependency:copy-dependencies",
                f"-Dkafka.version={KAFKA_VERSION}",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise ServiceError(f"fetching Kafka jars failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    staging.rename(libs)
    return libs


@dataclass(frozen=True)
class ScramUser:
    name: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class KafkaSecurity:
    """SASL_SSL on the client listener: the broker's certificate and the SCRAM users clients sign in as."""

    certificate: ServerCertificate
    users: Sequence[ScramUser]
    mechanism: str = "SCRAM-SHA-512"
    # The broker's own user, for the inter-broker connections over the same listener.
    broker: ScramUser = field(default_factory=lambda: ScramUser("broker", secrets.token_urlsafe(24)))

    def __post_init__(self) -> None:
        if self.mechanism not in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
            raise ValueError(f"SCRAM-SHA-512 or SCRAM-SHA-256, not {self.mechanism}")


class KafkaServer:
    """One broker+controller on 127.0.0.1; storage is formatted on first start and kept in data_dir."""

    def __init__(
        self,
        cache: Path,
        data_dir: Path,
        port: int = 0,
        heap: str = "512m",
        partitions: int = 4,
        security: KafkaSecurity | None = None,
    ):
        self.cache = cache
        self.data_dir = data_dir
        self.port = port or free_port()
        self.controller_port = free_port()
        self.heap = heap
        self.partitions = partitions
        self.security = security
        self._process: ServerProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.touch(mode=0o600)  # in secured mode it holds the broker's key and SCRAM password
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    *self._listeners(),
                    f"log.dirs={self.data_dir / 'log'}",
                    f"num.partitions={self.partitions}",
                    "auto.create.topics.enable=true",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        (self.data_dir / "log4j2.properties").write_text(
            LOG4J2.format(log=self.data_dir / "server.log", level="INFO")
        )
        return config

    def _listeners(self) -> list[str]:
        client = "SASL_SSL" if self.security else "PLAINTEXT"
        lines = [
            f"listeners={client}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners={client}://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map={client}:{client},CONTROLLER:PLAINTEXT",
            f"inter.broker.listener.name={client}",
        ]
        if self.security is None:
            return lines
        cert, key, ca = self.security.certificate.pem()
        mechanism, broker = self.security.mechanism, self.security.broker
        login = "org.apache.kafka.common.security.scram.ScramLoginModule"
        return [
            *lines,
            f"sasl.enabled.mechanisms={mechanism}",
            f"sasl.mechanism.inter.broker.protocol={mechanism}",
            f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config={login} required"
            f' username="{broker.name}" password="{broker.password}";',
            # PEM key and trust stores, inline: no keytool, no store passwords.
            "ssl.keystore.type=PEM",
            f"ssl.keystore.certificate.chain={_property_value(cert)}",
            f"ssl.keystore.key={_property_value(key)}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.certificates={_property_value(ca)}",
            "ssl.client.auth=none",  # clients sign in with SCRAM, not with certificates
            "ssl.endpoint.identification.algorithm=https",
        ]

    def _scram_arguments(self) -> list[str]:
        if self.security is None:
            return []
        mechanism = self.security.mechanism
        users = [*self.security.users, self.security.broker]
        return [f'--add-scram={mechanism}=[name="{u.name}",password="{u.password}"]' for u in users]

    def _java(self, libs: Path, main: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def start(self, timeout: float = 90.0) -> None:
        libs = ensure_jars(self.cache)
        config = self._write_config()
        if not (self.data_dir / "log" / "meta.properties").is_file():
            cluster_id = _cluster_id()
            result = subprocess.run(  # noqa: S603 - a fixed argv of our own tools, no shell
                # `--cluster-id=` keeps an id that starts with "-" (one in 64) from reading as an option.
                self._java(
                    libs,
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(config),
                    *self._scram_arguments(),
                ),
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise ServiceError(f"formatting Kafka storage failed: {result.stdout}{result.stderr}")
        self._process = ServerProcess(
            "kafka", self._java(libs, "kafka.Kafka", str(config)), self.port, self.data_dir / "stdout.log"
        )
        self._process.start(timeout)

    def stop(self) -> None:
        if self._process:
            self._process.stop(timeout=30)


def _property_value(pem: str) -> str:
    """PEM text as one properties value on one line: its line breaks as `\\n` escapes, the last one
    included (Kafka's PEM parser wants white space after each BEGIN and END line)."""
    return "".join(f"{line}\\n" for line in pem.strip().splitlines())


def _cluster_id() -> str:
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
