"""The FastAPI application. Every route but /healthz and /readyz needs an account's bearer token.

Reads need the `viewer` role; labelling, acknowledging and silencing `analyst`; promotion, rollback
and accounts `admin`. A refusal (403) and every change are written to the audit log. Label bodies are
validated by the `label` contract in schemas/ (the same one the labels topic uses), and that JSON
Schema is what the OpenAPI document shows for them.
"""

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import text
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from accounts import Account, AccountError, Accounts, allows
from accounts.store import ROLES
from alerts.queries import STATES, acknowledge, get_alert, list_alerts, notifications_for
from alerts.silences import active_silences, add_silence, expire_silence
from api.console import add_console_routes, address_of, csrf_matches, session_of
from api.metrics import DatabaseCollector
from api.middleware import BodyLimit, RefusedBody, SecurityHeaders
from foundation.clock import utcnow
from foundation.settings import Settings, get_settings
from inference import Bundle, BundleError
from inference.entities import Company
from labels.imports import parse_labelled_file
from labels.store import LabelError, NewLabel
from schemas import Contract, ContractError, load_schema
from training.learning import Learning
from training.registry import ModelInfo, RegistryError, UnknownModel
from trends import Rollups

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

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


class RowProblem(BaseModel):
    line: int
    field: str | None
    reason: str


class ImportReport(BaseModel):
    stored: LabelResult
    errors: list[RowProblem]
    error_count: int


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


class Notification(BaseModel):
    id: int
    receiver: str
    kind: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class AlertDetail(BaseModel):
    alert: Alert
    evidence: list[dict[str, Any]]
    notifications: list[Notification]


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
    comment: Text = Field("", max_length=2000)


LanguageParam = Annotated[
    str | None, Query(pattern="^[a-z]{2,3}$", description="A served language (en, zh); default: the first")
]


class Model(BaseModel):
    version: str
    language: str
    parent: str | None
    status: str
    decision: str
    metrics: dict[str, Any]
    data: dict[str, Any]
    created_at: datetime
    promoted_at: datetime | None
    served: str | None = None  # the artefact workers run: onnx-int8, onnx-fp32 or torch
    served_because: str | None = None


class NewAccount(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")
    role: str = Field(pattern=f"^({'|'.join(ROLES)})$")
    password: Text = Field(min_length=12, max_length=1000)


class AccountOut(BaseModel):
    name: str
    role: str
    disabled: bool


class RoleChange(BaseModel):
    role: str = Field(pattern=f"^({'|'.join(ROLES)})$")


class NewToken(BaseModel):
    label: Text = Field("", max_length=200)


class TokenOut(BaseModel):
    id: int
    account: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    outcome: str
    address: str | None
    detail: dict[str, Any]


class TrainingRun(BaseModel):
    id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    version: str | None
    detail: str


class TopicVolume(BaseModel):
    scope_key: str
    count: int
    negative_ratio: float


class Bucket(BaseModel):
    start: datetime
    count: int
    negative: int
    neutral: int
    positive: int
    score_sum: float
    negative_ratio: float
    mean_score: float


class RisingScope(BaseModel):
    scope_key: str
    share: float
    baseline_share: float
    count: int


RANGES = {
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=30),
    "year": timedelta(days=365),
}
Range = Annotated[str, Query(alias="range", pattern=f"^({'|'.join(RANGES)})$")]


class ScoredItem(BaseModel):
    event_id: str
    event_time: datetime
    text: str
    sentiment: str
    topic: str | None
    model_version: str
    source: str | None
    url: str | None


class WatchedCompany(BaseModel):
    id: str
    name: str
    tickers: list[str]
    aliases: list[str]
    scope_key: str


class FinsentryAPI(FastAPI):
    """FastAPI whose whole stack, error pages included, sits inside the body limit and security headers."""

    body_limit: int = 2**20
    route_limits: ClassVar[dict[str, int]] = {}
    trusted_proxies: str = ""  # FINSENTRY_TRUSTED_PROXIES

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        stack: ASGIApp = SecurityHeaders(BodyLimit(inner, self.body_limit, self.route_limits))
        if self.trusted_proxies:
            # The client's address and scheme (so Secure cookies and HSTS) from X-Forwarded-For and
            # -Proto, believed only from the named proxies: uvicorn's own walk of the chain.
            trusted = [h.strip() for h in self.trusted_proxies.split(",") if h.strip()]
            stack = ProxyHeadersMiddleware(stack, trusted_hosts=trusted)
        return stack


def create_app(
    parts: Learning,
    accounts: Accounts,
    watchlist: Sequence[Company] = (),
    settings: Settings | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    app = FinsentryAPI(
        title="finsentry", version="1", description=__doc__, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.body_limit = settings.api_body_limit_bytes
    # A JSON batch of labels may hold 1,000 texts of 16,000 characters: it gets the import's limit.
    app.route_limits = {"/labels": settings.api_import_limit_bytes}
    app.trusted_proxies = settings.trusted_proxies
    rollups = Rollups(parts.engine)
    label_contract = Contract.of("label")
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(parts.engine))

    def require(role: str, action: str) -> Callable[..., Account]:
        """The caller's account, if its token is live and its role allows `action`; else 401 or 403."""

        def check(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        ) -> Account:
            account = accounts.by_token(credentials.credentials) if credentials else None
            if credentials is None and (found := session_of(request, accounts)) is not None:
                account, csrf = found
                # A browser sends the cookie whoever asks it to: a write must prove it comes from our page.
                if request.method not in SAFE_METHODS and not csrf_matches(
                    request.headers.get("X-CSRF-Token"), csrf
                ):
                    accounts.audit(
                        account.name, action, "denied", "missing or wrong CSRF token", address_of(request)
                    )
                    raise HTTPException(403, "a write from the console needs its CSRF token")
            if account is None:
                raise HTTPException(401, "a valid bearer token is needed", {"WWW-Authenticate": "Bearer"})
            if not allows(account.role, role):
                accounts.audit(
                    account.name,
                    action,
                    "denied",
                    f"{request.method} {request.url.path}",
                    address_of(request),
                )
                raise HTTPException(
                    403, f"{action} needs the {role} role; {account.name} is a {account.role}"
                )
            return account

        return check

    reads = [Depends(require("viewer", "read"))]

    if settings.api_docs:

        @app.get("/openapi.json", include_in_schema=False, dependencies=reads)
        def openapi_document() -> JSONResponse:
            return JSONResponse(app.openapi())

    @app.exception_handler(RefusedBody)
    async def refused_body(_: Request, exc: RefusedBody) -> JSONResponse:
        problem = Problem(error=exc.error, message=str(exc.detail))
        return JSONResponse(problem.model_dump(), exc.status_code, headers={"Connection": "close"})

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

    @app.get("/metrics", tags=["health"], response_class=Response, dependencies=reads)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    label_schema = {k: v for k, v in load_schema("label").items() if not k.startswith("$")}

    @app.post(
        "/labels",
        tags=["labels"],
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
    async def post_labels(
        request: Request, account: Annotated[Account, Depends(require("analyst", "label"))]
    ) -> LabelResult:
        """Store labels: a JSON array of `label` messages (schemas/label.json). `labeled_by` is the caller's
        account; an admin's labels keep the name they give (the audit log records it)."""
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
            if account.role != "admin":  # only an admin attributes labels to others (audited below)
                message = {**message, "labeled_by": account.name}
            labels.append(NewLabel.from_message(message, "api"))
        result = parts.labels.add(labels)
        others = sorted({label.labelled_by for label in labels} - {account.name})
        accounts.audit(
            account.name,
            "label",
            target="labels",
            address=address_of(request),
            rows=len(labels),
            **({"attributed_to": others} if others else {}),
        )
        return LabelResult(**vars(result))

    @app.post(
        "/labels/import",
        tags=["labels"],
        responses={413: {"model": Problem}, 422: {"model": Problem}},
        openapi_extra={"requestBody": IMPORT_BODY},
    )
    async def import_labels(
        request: Request, account: Annotated[Account, Depends(require("analyst", "label"))]
    ) -> ImportReport:
        """A labelled CSV or JSONL file (multipart field `file`): good rows are stored, each bad one is
        reported with its line. Rows are the caller's; an admin's JSONL rows keep their own labeled_by."""
        # The body is read only now, after the account is known, and kept in memory (the limit bounds it):
        # an anonymous upload never reaches a parser or the disk.
        filename, content = await _uploaded_file(request, app.route_limits["/labels"])
        attribute = account.role == "admin"
        parsed = parse_labelled_file(filename, content, account.name, keep_row_attribution=attribute)
        result = parts.labels.add(parsed.labels)
        others = sorted({label.labelled_by for label in parsed.labels} - {account.name})
        accounts.audit(
            account.name,
            "label",
            target=f"import {filename}",
            address=address_of(request),
            rows=len(parsed.labels),
            errors=len(parsed.errors),
            **({"attributed_to": others} if others else {}),
        )
        return ImportReport(
            stored=LabelResult(**vars(result)),
            errors=[RowProblem(**vars(e)) for e in parsed.errors[:1000]],
            error_count=len(parsed.errors),
        )

    @app.get("/labels/stats", tags=["labels"], dependencies=reads)
    def label_stats() -> dict[str, int]:
        champion = parts.registry.champion()
        return parts.labels.counts(since=champion.trained_through if champion else None)

    @app.get("/review", tags=["review"], dependencies=reads)
    def review_items(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[ReviewItem]:
        """Open items, least certain first."""
        return [
            ReviewItem.model_validate(item, from_attributes=True) for item in parts.review.open_items(limit)
        ]

    @app.post(
        "/review/{item_id}/label",
        tags=["review"],
        responses={404: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem}},
    )
    def answer_review(
        request: Request,
        item_id: RowId,
        answer: ReviewAnswer,
        account: Annotated[Account, Depends(require("analyst", "label"))],
    ) -> dict[str, int]:
        if answer.topic is None and answer.sentiment is None:
            raise LabelError("an answer needs a topic, a sentiment or both", "topic")
        try:
            sample_id = parts.review.answer(item_id, account.name, answer.topic, answer.sentiment)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        except LabelError as exc:
            if exc.field == "status":
                raise HTTPException(409, str(exc)) from exc
            raise
        accounts.audit(
            account.name,
            "label",
            target=f"review/{item_id}",
            address=address_of(request),
            topic=answer.topic,
            sentiment=answer.sentiment,
        )
        return {"sample_id": sample_id}

    @app.post(
        "/review/{item_id}/reopen",
        tags=["review"],
        responses={404: {"model": Problem}, 409: {"model": Problem}},
    )
    def undo_review(
        request: Request,
        item_id: RowId,
        account: Annotated[Account, Depends(require("analyst", "label"))],
    ) -> dict[str, str]:
        """Undo an answer: the item is open again and the label it made is gone (if still the same)."""
        try:
            parts.review.reopen(item_id, account.name)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        except LabelError as exc:
            raise HTTPException(409, str(exc)) from exc
        accounts.audit(account.name, "undo label", target=f"review/{item_id}", address=address_of(request))
        return {"status": "open"}

    @app.get("/alerts", tags=["alerts"], dependencies=reads)
    def alerts(
        state: Annotated[str | None, Query(pattern=f"^({'|'.join(STATES)})$")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[Alert]:
        return [
            Alert.model_validate(row, from_attributes=True) for row in list_alerts(parts.engine, state, limit)
        ]

    @app.post("/alerts/{alert_id}/ack", tags=["alerts"], responses={404: {"model": Problem}})
    def ack_alert(
        request: Request,
        alert_id: Id,
        account: Annotated[Account, Depends(require("analyst", "acknowledge"))],
    ) -> Alert:
        row = acknowledge(parts.engine, alert_id, account.name)
        if row is None:
            raise HTTPException(404, f"no alert {alert_id}")
        accounts.audit(account.name, "acknowledge", target=f"alert/{alert_id}", address=address_of(request))
        return Alert.model_validate(row, from_attributes=True)

    @app.get("/alerts/{alert_id}", tags=["alerts"], dependencies=reads, responses={404: {"model": Problem}})
    def alert_detail(alert_id: Id) -> AlertDetail:
        """The alert, its evidence (as last sent) and its notification history."""
        row = get_alert(parts.engine, alert_id)
        if row is None:
            raise HTTPException(404, f"no alert {alert_id}")
        sent = notifications_for(parts.engine, alert_id)
        evidence = next(
            (
                a.get("evidence", [])
                for n in sent
                for a in n.payload["alerts"]
                if a.get("alert_id") == alert_id
            ),
            [],
        )
        return AlertDetail(
            alert=Alert.model_validate(row, from_attributes=True),
            evidence=evidence,
            notifications=[Notification.model_validate(n, from_attributes=True) for n in sent],
        )

    @app.get("/silences", tags=["silences"], dependencies=reads)
    def silences() -> list[Silence]:
        return [Silence.model_validate(row, from_attributes=True) for row in active_silences(parts.engine)]

    Silencer = Annotated[Account, Depends(require("analyst", "silence"))]

    @app.post("/silences", tags=["silences"], status_code=201)
    def new_silence(request: Request, body: NewSilence, account: Silencer) -> dict[str, str]:
        silence_id = add_silence(
            parts.engine, body.matchers, timedelta(minutes=body.minutes), account.name, body.comment
        )
        accounts.audit(
            account.name,
            "silence",
            target=f"silence/{silence_id}",
            address=address_of(request),
            matchers=body.matchers,
            minutes=body.minutes,
        )
        return {"id": silence_id}

    @app.delete("/silences/{silence_id}", tags=["silences"], responses={404: {"model": Problem}})
    def end_silence(request: Request, silence_id: Id, account: Silencer) -> dict[str, str]:
        if not expire_silence(parts.engine, silence_id):
            raise HTTPException(404, f"no active silence {silence_id}")
        accounts.audit(
            account.name, "expire silence", target=f"silence/{silence_id}", address=address_of(request)
        )
        return {"id": silence_id, "status": "expired"}

    @app.get("/models", tags=["models"], dependencies=reads)
    def models(language: LanguageParam = None) -> list[Model]:
        """The models of one language, or of every served language (default first)."""
        registries = [parts.registry_for(language)] if language else parts.registries.values()
        return [_model(m) for registry in registries for m in registry.models()]

    @app.get("/models/runs", tags=["models"], dependencies=reads)
    def training_runs(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[TrainingRun]:
        """The nightly trainer's runs, newest first, with their outcome."""
        return [TrainingRun.model_validate(r, from_attributes=True) for r in parts.registry.runs(limit)]

    @app.post(
        "/models/{version}/promote",
        tags=["models"],
        responses={404: {"model": Problem}, 409: {"model": Problem}},
    )
    def promote(
        request: Request,
        version: Id,
        account: Annotated[Account, Depends(require("admin", "promote"))],
        language: LanguageParam = None,
    ) -> Model:
        model = _model(parts.registry_for(language).promote(version))
        accounts.audit(account.name, "promote", target=f"model/{version}", address=address_of(request))
        return model

    @app.post("/models/rollback", tags=["models"], responses={409: {"model": Problem}})
    def rollback(
        request: Request,
        account: Annotated[Account, Depends(require("admin", "rollback"))],
        language: LanguageParam = None,
    ) -> Model:
        model = _model(parts.registry_for(language).rollback())
        accounts.audit(account.name, "rollback", target=f"model/{model.version}", address=address_of(request))
        return model

    @app.get("/trends/{scope_key}", tags=["trends"], dependencies=reads)
    def trend(scope_key: Annotated[str, PathParam(max_length=300)], span: Range = "day") -> list[Bucket]:
        """Figures of one scope key (global:all, entity:..., topic:..., source:...), oldest first: per
        minute for the last hour, per hour for longer ranges."""
        if span == "hour":
            buckets = rollups.minutes(scope_key, (utcnow() - RANGES[span]).replace(second=0, microsecond=0))
        else:
            buckets = rollups.series(scope_key, _hour_floor(utcnow() - RANGES[span]))
        return [Bucket(**vars(b), negative_ratio=b.negative_ratio, mean_score=b.mean_score) for b in buckets]

    @app.get("/trends/{scope_key}/items", tags=["trends"], dependencies=reads)
    def latest_items(
        scope_key: Annotated[str, PathParam(max_length=300)], limit: Annotated[int, Query(ge=1, le=200)] = 50
    ) -> list[ScoredItem]:
        """The newest scored items of a scope key (texts masked), newest first."""
        return [
            ScoredItem(event_id=event_id, event_time=at, **vars(item))
            for at, event_id, item in rollups.latest(scope_key, limit)
        ]

    @app.get("/trends-by-topic", tags=["trends"], dependencies=reads)
    def busiest_topics(
        span: Range = "day", limit: Annotated[int, Query(ge=1, le=50)] = 6
    ) -> list[TopicVolume]:
        """The topics with the most events over the range: the overview charts each of them."""
        totals = rollups.totals(None, _hour_floor(utcnow() - RANGES[span]), prefix="topic:")
        busiest = sorted(totals.items(), key=lambda kv: kv[1].count, reverse=True)[:limit]
        return [TopicVolume(scope_key=k, count=v.count, negative_ratio=v.negative_ratio) for k, v in busiest]

    @app.get("/watchlist", tags=["trends"], dependencies=reads)
    def search_watchlist(
        q: Annotated[str, Query(min_length=1, max_length=100)], limit: Annotated[int, Query(ge=1, le=50)] = 10
    ) -> list[WatchedCompany]:
        """Companies whose name, ticker or alias (any language) contains `q`, case-insensitively."""
        wanted = q.casefold()
        found = [
            c
            for c in watchlist
            if any(wanted in t.casefold() for t in (c.name, c.id, *c.tickers, *c.aliases))
        ]
        return [
            WatchedCompany(
                id=c.id,
                name=c.name,
                tickers=list(c.tickers),
                aliases=list(c.aliases),
                scope_key=f"entity:{c.id}",
            )
            for c in found[:limit]
        ]

    @app.get("/trends", tags=["trends"], dependencies=reads)
    def rising(span: Range = "day", limit: Annotated[int, Query(ge=1, le=100)] = 10) -> list[RisingScope]:
        """Scope keys whose negative share over the range rose most above their own baseline."""
        return [RisingScope(**vars(r)) for r in rollups.rising(RANGES[span], utcnow(), top=limit)]

    add_account_routes(app, accounts, require)
    add_console_routes(app, accounts, lambda: _champion_topics(parts), api_docs=settings.api_docs)
    return app


IMPORT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        }
    },
}


async def _uploaded_file(request: Request, limit: int) -> tuple[str, bytes]:
    """(file name, content) of the multipart field `file`, parsed in memory."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ContractError("wrong_type", "the body must be multipart/form-data with a field `file`", "file")
    parser = MultiPartParser(request.headers, request.stream(), max_files=1, max_fields=10)
    parser.spool_max_size = limit + 1  # never rolled over to a temporary file
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ContractError("invalid_value", f"the multipart body: {exc.message}", "file") from exc
    upload = form.get("file")
    if not isinstance(upload, StarletteUpload):
        raise ContractError("missing_field", "the multipart field `file` is missing", "file")
    try:
        return upload.filename or "labels.csv", await upload.read()
    finally:
        await upload.close()


def add_account_routes(
    app: FastAPI, accounts: Accounts, require: Callable[[str, str], Callable[..., Account]]
) -> None:
    """Accounts (admin), each account's own API tokens, and the audit log (admin)."""
    Admin = Annotated[Account, Depends(require("admin", "manage accounts"))]
    Anyone = Annotated[Account, Depends(require("viewer", "manage own tokens"))]

    @app.exception_handler(AccountError)
    async def account_error(_: Request, exc: AccountError) -> JSONResponse:
        status = 404 if str(exc).startswith("no ") else 409
        return JSONResponse(Problem(error="account", message=str(exc)).model_dump(), status)

    @app.get("/accounts", tags=["accounts"])
    def list_accounts(_: Admin) -> list[AccountOut]:
        return [AccountOut.model_validate(a, from_attributes=True) for a in accounts.list()]

    @app.post("/accounts", tags=["accounts"], status_code=201, responses={409: {"model": Problem}})
    def add_account(request: Request, body: NewAccount, admin: Admin) -> AccountOut:
        account = accounts.add(body.name, body.role, body.password)
        accounts.audit(
            admin.name, "add account", target=body.name, address=address_of(request), role=body.role
        )
        return AccountOut.model_validate(account, from_attributes=True)

    @app.post("/accounts/{name}/role", tags=["accounts"], responses={404: {"model": Problem}})
    def set_role(request: Request, name: Id, body: RoleChange, admin: Admin) -> AccountOut:
        account = accounts.set_role(name, body.role)
        accounts.audit(admin.name, "set role", target=name, address=address_of(request), role=body.role)
        return AccountOut.model_validate(account, from_attributes=True)

    @app.post("/accounts/{name}/disable", tags=["accounts"], responses={404: {"model": Problem}})
    def disable(request: Request, name: Id, admin: Admin) -> AccountOut:
        account = accounts.set_disabled(name, True)
        accounts.audit(admin.name, "disable account", target=name, address=address_of(request))
        return AccountOut.model_validate(account, from_attributes=True)

    @app.get("/tokens", tags=["accounts"])
    def list_tokens(account: Anyone) -> list[TokenOut]:
        mine = None if account.role == "admin" else account.name
        return [TokenOut.model_validate(t, from_attributes=True) for t in accounts.tokens(mine)]

    @app.post("/tokens", tags=["accounts"], status_code=201)
    def create_token(request: Request, body: NewToken, account: Anyone) -> dict[str, Any]:
        """A new token for the caller's own account; the secret is in this answer only."""
        token, secret = accounts.create_token(account.name, body.label)
        accounts.audit(account.name, "create token", target=f"token/{token.id}", address=address_of(request))
        return {"id": token.id, "token": secret}

    @app.delete("/tokens/{token_id}", tags=["accounts"], responses={404: {"model": Problem}})
    def revoke_token(request: Request, token_id: RowId, account: Anyone) -> TokenOut:
        owned = {t.id for t in accounts.tokens(None if account.role == "admin" else account.name)}
        if token_id not in owned:
            raise HTTPException(404, f"no token {token_id} of yours")
        token = accounts.revoke_token(token_id)
        accounts.audit(account.name, "revoke token", target=f"token/{token_id}", address=address_of(request))
        return TokenOut.model_validate(token, from_attributes=True)

    @app.get("/audit", tags=["accounts"])
    def audit_log(_: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditEntry]:
        return [AuditEntry.model_validate(row, from_attributes=True) for row in accounts.audit_log(limit)]


def _champion_topics(parts: Learning) -> list[str]:
    """The topics the serving models know, every language's: the review page offers these."""
    topics: dict[str, None] = {}
    for registry in parts.registries.values():
        champion = registry.champion()
        if champion is not None:
            topics.update(dict.fromkeys(Bundle.open(champion.bundle_path, verify=False).topic_labels))
    return list(topics)


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _model(info: ModelInfo) -> Model:
    model = Model.model_validate(info, from_attributes=True)
    try:
        bundle = Bundle.open(info.bundle_path, verify=False)
    except BundleError:  # a registry row whose folder is gone still lists
        return model
    export = bundle.manifest.get("export", {})
    because = export.get("served_because") or export.get("int8_not_served_because")
    return model.model_copy(update={"served": bundle.served, "served_because": because})
