"""The model registry: every bundle the trainer made, which one serves, and how each run ended.

Bundles live in `registry_dir/<version>/`; the serving pointer `model_dir` is a symbolic link to the
champion's folder, replaced atomically, so a worker that opens `model_dir` always sees one whole model.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Index, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from foundation.clock import utcnow
from foundation.db import Base
from inference.bundle import Bundle

STATUSES = ("champion", "challenger", "rejected", "retired")
log = logging.getLogger(__name__)


class RegistryError(RuntimeError):
    """A registry operation that cannot be done (unknown version, nothing to roll back to, ...)."""


class UnknownModel(RegistryError):
    """No model of that version in the registry."""


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (Index("ix_models_language_status", "language", "status"),)

    version: Mapped[str] = mapped_column(String(100), primary_key=True)
    parent: Mapped[str | None] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")
    status: Mapped[str] = mapped_column(String(12))
    bundle_path: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]]  # labels seen: counts, the arrival cut-off, the replay sample size
    metrics: Mapped[dict[str, Any]]  # per head on the frozen set, for it and for its parent
    decision: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    promoted_at: Mapped[datetime | None]
    rolled_back_at: Mapped[datetime | None]  # set when people took it back: never the target of a rollback


class TrainingRunRow(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(12))  # running | promoted | rejected | skipped | failed
    version: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[str] = mapped_column(Text, default="")


@dataclass(frozen=True)
class ModelInfo:
    version: str
    parent: str | None
    status: str
    bundle_path: Path
    data: dict[str, Any]
    metrics: dict[str, Any]
    decision: str
    created_at: datetime
    promoted_at: datetime | None
    language: str = "en"

    @classmethod
    def of(cls, row: ModelRow) -> ModelInfo:
        return cls(
            row.version,
            row.parent,
            row.status,
            Path(row.bundle_path),
            dict(row.data),
            dict(row.metrics),
            row.decision,
            row.created_at,
            row.promoted_at,
            row.language,
        )

    @property
    def trained_through(self) -> datetime | None:
        """Arrival time of the newest label this model has seen."""
        stamp = self.data.get("trained_through")
        return datetime.fromisoformat(stamp) if stamp else None


Announce = Callable[["ModelInfo", str | None], None]  # (new champion, previous champion's version)


class Registry:
    """The models of one language: its champion, challengers and history, and its serving pointer."""

    def __init__(
        self,
        engine: Engine,
        registry_dir: Path,
        model_dir: Path,
        announce: Announce | None = None,
        language: str = "en",
    ) -> None:
        """`announce` is told of each new champion once the serving pointer has moved."""
        self.engine = engine
        self.registry_dir = Path(registry_dir)
        self.model_dir = Path(model_dir)
        self.announce = announce
        self.language = language

    def bundle_dir(self, version: str) -> Path:
        return self.registry_dir / version

    # -- reading ------------------------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        with Session(self.engine) as session:
            rows = session.scalars(self._mine().order_by(ModelRow.created_at.desc()))
            return [ModelInfo.of(row) for row in rows]

    def get(self, version: str) -> ModelInfo:
        with Session(self.engine) as session:
            row = session.get(ModelRow, version)
            if row is None or row.language != self.language:
                raise UnknownModel(f"no {self.language} model {version!r} in the registry")
            return ModelInfo.of(row)

    def champion(self) -> ModelInfo | None:
        with Session(self.engine) as session:
            row = session.scalar(self._mine().where(ModelRow.status == "champion"))
            return ModelInfo.of(row) if row else None

    def runs(self, limit: int = 50) -> list[TrainingRunRow]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(
                session.scalars(select(TrainingRunRow).order_by(TrainingRunRow.id.desc()).limit(limit))
            )

    # -- writing ------------------------------------------------------------------------------------

    def register(
        self,
        bundle_dir: Path,
        status: str,
        parent: str | None = None,
        data: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        decision: str = "",
    ) -> ModelInfo:
        """Records a bundle that is already in place under registry_dir (or copies one in)."""
        if status not in STATUSES:
            raise RegistryError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        bundle = Bundle.open(bundle_dir)  # refuses a broken bundle before it is recorded
        if not bundle.servable:
            because = bundle.manifest.get("not_servable_because", "")
            raise RegistryError(f"{bundle_dir} is not servable ({because}): it can be measured, not served")
        if (bundle.language or self.language) != self.language:
            raise RegistryError(
                f"{bundle_dir} serves {bundle.language}; this is the {self.language} registry"
                f" (--language {bundle.language})"
            )
        target = self.bundle_dir(bundle.version)
        if Path(bundle_dir).resolve() != target.resolve():
            if target.exists():
                raise RegistryError(f"{target} exists already: version {bundle.version} is registered")
            staging = target.with_name(f".{target.name}.copy")
            shutil.copytree(bundle_dir, staging)
            os.replace(staging, target)
        with Session(self.engine) as session, session.begin():
            session.add(
                ModelRow(
                    version=bundle.version,
                    parent=parent,
                    language=self.language,
                    status="challenger",
                    bundle_path=str(target),
                    data=data or {},
                    metrics=metrics or {},
                    decision=decision,
                    created_at=utcnow(),
                )
            )
        if status == "champion":
            return self.promote(bundle.version)
        self._set_status(bundle.version, status)
        return self.get(bundle.version)

    def promote(self, version: str) -> ModelInfo:
        """Makes `version` the champion: the old one retires and the serving pointer moves."""
        previous = None
        with Session(self.engine) as session, session.begin():
            row = session.get(ModelRow, version, with_for_update=True)
            if row is None or row.language != self.language:
                raise UnknownModel(f"no {self.language} model {version!r} in the registry")
            Bundle.open(Path(row.bundle_path))  # a damaged bundle is refused before anything moves
            for old in session.scalars(self._mine().where(ModelRow.status == "champion")):
                if old.version != version:
                    old.status, previous = "retired", old.version
            row.status, row.promoted_at = "champion", utcnow()
            self._point_at(Path(row.bundle_path))
        champion = self.get(version)
        if self.announce is not None:
            try:
                self.announce(champion, previous)
            except Exception:  # the promotion stands: workers also find the new link by their folder watch
                log.exception("promoted, but the announcement failed", extra={"version": version})
        return champion

    def rollback(self) -> ModelInfo:
        """Brings back the champion before this one; the current one is retired."""
        champion = self.champion()
        if champion is None:
            raise RegistryError("there is no champion to roll back from")
        with Session(self.engine) as session:
            previous = session.scalar(
                select(ModelRow.version)
                .where(
                    ModelRow.language == self.language,
                    ModelRow.status == "retired",
                    ModelRow.promoted_at.is_not(None),
                    ModelRow.rolled_back_at.is_(None),
                )
                .order_by(ModelRow.promoted_at.desc())
                .limit(1)
            )
        if previous is None:
            raise RegistryError(f"no earlier champion to roll back to from {champion.version}")
        with Session(self.engine) as session, session.begin():
            row = session.get(ModelRow, champion.version)
            assert row is not None  # noqa: S101 - narrows a type; no check rests on it
            row.rolled_back_at = utcnow()
        return self.promote(previous)

    def _mine(self) -> Any:
        return select(ModelRow).where(ModelRow.language == self.language)

    def _set_status(self, version: str, status: str) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.get(ModelRow, version)
            assert row is not None  # noqa: S101 - narrows a type; no check rests on it
            row.status = status

    def _point_at(self, bundle_dir: Path) -> None:
        if self.model_dir.exists() and not self.model_dir.is_symlink():
            raise RegistryError(
                f"{self.model_dir} is a folder, not the registry's pointer: move it away (or register it)"
            )
        self.model_dir.parent.mkdir(parents=True, exist_ok=True)
        link = self.model_dir.with_name(f".{self.model_dir.name}.link-{os.getpid()}")
        link.unlink(missing_ok=True)
        link.symlink_to(bundle_dir.resolve(), target_is_directory=True)
        os.replace(link, self.model_dir)

    # -- training runs ------------------------------------------------------------------------------

    def start_run(self) -> int:
        with Session(self.engine) as session, session.begin():
            run = TrainingRunRow(started_at=utcnow(), status="running")
            session.add(run)
            session.flush()
            return run.id

    def finish_run(self, run_id: int, status: str, detail: str, version: str | None = None) -> None:
        with Session(self.engine) as session, session.begin():
            run = session.get(TrainingRunRow, run_id)
            assert run is not None  # noqa: S101 - narrows a type; no check rests on it
            run.status, run.detail, run.version, run.finished_at = status, detail, version, utcnow()
