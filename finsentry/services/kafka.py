"""Apache Kafka in KRaft mode, single node, from Maven Central jars run with the machine's Java."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from importlib import resources
from pathlib import Path

from finsentry.services.process import ServerProcess, ServiceError, free_port

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
        result = subprocess.run(
            [
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


class KafkaServer:
    """One broker+controller on 127.0.0.1; storage is formatted on first start and kept in data_dir."""

    def __init__(self, cache: Path, data_dir: Path, port: int = 0, heap: str = "512m", partitions: int = 4):
        self.cache = cache
        self.data_dir = data_dir
        self.port = port or free_port()
        self.controller_port = free_port()
        self.heap = heap
        self.partitions = partitions
        self._process: ServerProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
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
            result = subprocess.run(
                # `--cluster-id=` keeps an id that starts with "-" (one in 64) from reading as an option.
                self._java(
                    libs, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(config)
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


def _cluster_id() -> str:
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
