"""The FastAPI application. Reads are open; every write needs the bearer token.

Label bodies are validated by the `label` contract in schemas/ (the same one the labels topic uses),
and that JSON Schema is what the OpenAPI document shows for them.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import text

from alerts.queries import STATES, acknowledge, list_alerts
from alerts.silences import active_silences, add_silence, expire_silence
from api.metrics import DatabaseCollector
from labels.store import LabelError, NewLabel
from schemas import Contract, ContractError, load_schema
from training.learning import Learning
from training.registry import ModelInfo, RegistryError, UnknownModel

MAX_LABELS_PER_REQUEST = 1000
BEARER = HTTPBearer(auto_error=False)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character")  # PostgreSQL text cannot hold one
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
Id = Annotated[str, PathParam(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]
RowId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


class Problem(BaseModel):
    error: str
    message: str
    field: str | None = None


class LabelResult(BaseModel):
    inserted: int
    updated: int
    unchanged: int
    repeated: int
    ids: list[int]


class ReviewItem(BaseModel):
    id: int
    event_id: str
    text: str
    head: str
    margin: float
    prediction: dict[str, Any]
    model_version: str
    created_at: datetime


class ReviewAnswer(BaseModel):
    labeled_by: Text = Field(min_length=1, max_length=200)
    topic: Text | None = Field(None, min_length=1, max_length=100)
    sentiment: str | None = Field(None, pattern="^(negative|neutral|positive)$")


class Alert(BaseModel):
    id: str
    rule: str
    scope_key: str
    state: str
    severity: str
    values: dict[str, Any]
    fired_at: datetime | None
    resolved_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None


class Acknowledgement(BaseModel):
    by: Text = Field(min_length=1, max_length=200)


class Silence(BaseModel):
    id: str
    matchers: dict[str, Any]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str


class NewSilence(BaseModel):
    matchers: dict[Text, Text] = Field(min_length=1)
    minutes: int = Field(ge=1, le=60 * 24 * 90)
    created_by: Text = Field(min_length=1, max_length=200)
    comment: Text = Field("", max_length=2000)


class Model(BaseModel):
    version: str
    parent: str | None
    status: str
    decision: str
    metrics: dict[str, Any]
    data: dict[str, Any]
    created_at: datetime
    promoted_at: datetime | None


def create_app(parts: Learning, token: str) -> FastAPI:
    if not token:
        raise ValueError("the API needs a bearer token for writes (FINSENTRY_API_TOKEN)")
    app = FastAPI(title="finsentry", version="1", description=__doc__)
    label_contract = Contract.of("label")
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(parts.engine))

    def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        if credentials is None or not secrets.compare_digest(
            credentials.credentials.encode(), token.encode()
        ):
            raise HTTPException(
                401, "a valid bearer token is needed for writes", {"WWW-Authenticate": "Bearer"}
            )

    writes = [Depends(require_token)]

    @app.exception_handler(ContractError)
    async def contract_error(_: Request, exc: ContractError) -> JSONResponse:
        return JSONResponse(Problem(error=exc.code, message=exc.message, field=exc.field).model_dump(), 422)

    @app.exception_handler(LabelError)
    async def label_error(_: Request, exc: LabelError) -> JSONResponse:
        return JSONResponse(
            Problem(error="invalid_value", message=str(exc), field=exc.field).model_dump(), 422
        )

    @app.exception_handler(RegistryError)
    async def registry_error(_: Request, exc: RegistryError) -> JSONResponse:
        if isinstance(exc, UnknownModel):
            return JSONResponse(Problem(error="not_found", message=str(exc)).model_dump(), 404)
        return JSONResponse(Problem(error="conflict", message=str(exc)).model_dump(), 409)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": Problem}})
    def readyz() -> Response:
        try:
            with parts.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # not ready is an answer here, not an error
            problem = Problem(error="database_unavailable", message=type(exc).__name__)
            return JSONResponse(problem.model_dump(), 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["health"], response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    label_schema = {k: v for k, v in load_schema("label").items() if not k.startswith("$")}

    @app.post(
        "/labels",
        tags=["labels"],
        dependencies=writes,
        status_code=201,
        responses={422: {"model": Problem}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "array",
                            "items": label_schema,
                            "minItems": 1,
                            "maxItems": MAX_LABELS_PER_REQUEST,
                        }
                    }
                },
            }
        },
    )
    async def post_labels(request: Request) -> LabelResult:
        """Store labels: a JSON array of `label` messages (schemas/label.json)."""
        body = await request.body()
        try:
            messages = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ContractError("invalid_json", f"the body is not JSON: {exc}") from exc
        if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_LABELS_PER_REQUEST:
            raise ContractError(
                "wrong_type", f"the body must be an array of 1 to {MAX_LABELS_PER_REQUEST} labels"
            )
        labels = []
        for index, message in enumerate(messages):
            try:
                label_contract.validate(message)
            except ContractError as exc:
                raise ContractError(
                    exc.code, f"label {index}: {exc.message}", f"[{index}].{exc.field}"
                ) from exc
            labels.append(NewLabel.from_message(message, "api"))
        result = parts.labels.add(labels)
        return LabelResult(**vars(result))

    @app.get("/labels/stats", tags=["labels"])
    def label_stats() -> dict[str, int]:
        champion = parts.registry.champion()
        return parts.labels.counts(since=champion.trained_through if champion else None)

    @app.get("/review", tags=["review"])
    def review_items(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[ReviewItem]:
        """Open items, least certain first."""
        return [
            ReviewItem.model_validate(item, from_attributes=True) for item in parts.review.open_items(limit)
        ]

    @app.post(
        "/review/{item_id}/label",
        tags=["review"],
        dependencies=writes,
        responses={404: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem}},
    )
    def answer_review(item_id: RowId, answer: ReviewAnswer) -> dict[str, int]:
        if answer.topic is None and answer.sentiment is None:
            raise LabelError("an answer needs a topic, a sentiment or both", "topic")
        try:
            sample_id = parts.review.answer(item_id, answer.labeled_by, answer.topic, answer.sentiment)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        except LabelError as exc:
            if exc.field == "status":
                raise HTTPException(409, str(exc)) from exc
            raise
        return {"sample_id": sample_id}

    @app.get("/alerts", tags=["alerts"])
    def alerts(
        state: Annotated[str | None, Query(pattern=f"^({'|'.join(STATES)})$")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[Alert]:
        return [
            Alert.model_validate(row, from_attributes=True) for row in list_alerts(parts.engine, state, limit)
        ]

    @app.post(
        "/alerts/{alert_id}/ack", tags=["alerts"], dependencies=writes, responses={404: {"model": Problem}}
    )
    def ack_alert(alert_id: Id, body: Acknowledgement) -> Alert:
        row = acknowledge(parts.engine, alert_id, body.by)
        if row is None:
            raise HTTPException(404, f"no alert {alert_id}")
        return Alert.model_validate(row, from_attributes=True)

    @app.get("/silences", tags=["silences"])
    def silences() -> list[Silence]:
        return [Silence.model_validate(row, from_attributes=True) for row in active_silences(parts.engine)]

    @app.post("/silences", tags=["silences"], dependencies=writes, status_code=201)
    def new_silence(body: NewSilence) -> dict[str, str]:
        silence_id = add_silence(
            parts.engine, body.matchers, timedelta(minutes=body.minutes), body.created_by, body.comment
        )
        return {"id": silence_id}

    @app.delete(
        "/silences/{silence_id}", tags=["silences"], dependencies=writes, responses={404: {"model": Problem}}
    )
    def end_silence(silence_id: Id) -> dict[str, str]:
        if not expire_silence(parts.engine, silence_id):
            raise HTTPException(404, f"no active silence {silence_id}")
        return {"id": silence_id, "status": "expired"}

    @app.get("/models", tags=["models"])
    def models() -> list[Model]:
        return [_model(m) for m in parts.registry.models()]

    @app.post(
        "/models/{version}/promote",
        tags=["models"],
        dependencies=writes,
        responses={404: {"model": Problem}, 409: {"model": Problem}},
    )
    def promote(version: Id) -> Model:
        return _model(parts.registry.promote(version))

    @app.post("/models/rollback", tags=["models"], dependencies=writes, responses={409: {"model": Problem}})
    def rollback() -> Model:
        return _model(parts.registry.rollback())

    return app


def _model(info: ModelInfo) -> Model:
    return Model.model_validate(info, from_attributes=True)
