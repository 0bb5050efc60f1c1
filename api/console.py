"""The analyst console: login with a session cookie, and the pages, served by the API's own app.

A session is a random secret in an HttpOnly, SameSite=Strict cookie; SQL keeps its SHA-256 and a CSRF
token that every form and every write of the session must carry (synchronizer-token pattern; the
login form, before any session, uses a double-submit cookie). Pages read their data from the same
JSON routes as any API client, with the session instead of a bearer token.
"""

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from accounts import Account, Accounts, TooManyAttempts
from accounts.store import SESSION_HOURS

SESSION_COOKIE = "fs_session"
LOGIN_CSRF_COOKIE = "fs_login_csrf"
HERE = Path(__file__).resolve().parent
PAGES = ("overview", "alerts", "review", "models")


def session_of(request: Request, accounts: Accounts) -> tuple[Account, str] | None:
    """(account, CSRF token) of the request's live session cookie, if any."""
    secret = request.cookies.get(SESSION_COOKIE)
    return accounts.by_session(secret) if secret else None


def csrf_matches(given: str | None, expected: str) -> bool:
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


def address_of(request: Request) -> str | None:
    """The client's address: the socket's, or behind a proxy that FINSENTRY_TRUSTED_PROXIES names, the one
    uvicorn's ProxyHeadersMiddleware took from X-Forwarded-For (api/app.py: FinsentryAPI)."""
    return request.client.host if request.client else None


def _safe_next(target: str) -> str:
    """Only a path of this site: a login link must not send anyone elsewhere."""
    local = target.startswith("/") and not target.startswith("//") and "\\" not in target  # /\x is //x
    return target if local else "/console"


def add_docs_page(app: FastAPI, accounts: Accounts, templates: Jinja2Templates) -> None:
    """Swagger UI for signed-in accounts, from the vendored copy, under the same CSP as the console."""

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs(request: Request) -> Response:
        if session_of(request, accounts) is None:
            return RedirectResponse("/login?next=/docs", 303)
        return templates.TemplateResponse(request, "docs.html", {})


def add_console_routes(
    app: FastAPI, accounts: Accounts, topics: Callable[[], list[str]], api_docs: bool = True
) -> None:
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    if api_docs:
        add_docs_page(app, accounts, templates)

    def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def login_form(request: Request, next_page: str, error: str | None, status: int) -> Response:
        token = secrets.token_urlsafe(32)
        response = templates.TemplateResponse(
            request, "login.html", {"csrf": token, "next": next_page, "error": error}, status_code=status
        )
        set_cookie(request, response, LOGIN_CSRF_COOKIE, token, 600)
        return response

    @app.get("/login", include_in_schema=False, response_class=HTMLResponse)
    def login_page(request: Request, next_page: Annotated[str, Query(alias="next")] = "/console") -> Response:
        return login_form(request, _safe_next(next_page), None, 200)

    @app.post("/login", include_in_schema=False)
    def login(
        request: Request,
        name: Annotated[str, Form(max_length=100)],
        password: Annotated[str, Form(max_length=1000)],
        csrf: Annotated[str, Form(max_length=100)],
        next_page: Annotated[str, Form(alias="next", max_length=500)] = "/console",
    ) -> Response:
        target = _safe_next(next_page)
        if not csrf_matches(csrf, request.cookies.get(LOGIN_CSRF_COOKIE, "")):
            return login_form(request, target, "The form expired; please sign in again.", 403)
        try:
            result = accounts.login(name, password, address_of(request))
        except TooManyAttempts as exc:
            refused = login_form(request, target, str(exc).capitalize() + ".", 429)
            refused.headers["Retry-After"] = str(exc.wait_s)
            return refused
        if result is None:
            return login_form(request, target, "Wrong name or password.", 401)
        _, secret, _ = result
        response = RedirectResponse(target, 303)
        set_cookie(request, response, SESSION_COOKIE, secret, SESSION_HOURS * 3600)
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: Annotated[str, Form(max_length=100)]) -> Response:
        found = session_of(request, accounts)
        if found is not None and not csrf_matches(csrf, found[1]):
            # Another site's form: it must not end the session, nor clear the cookie.
            name, address = found[0].name, address_of(request)
            accounts.audit(name, "logout", "denied", "missing or wrong CSRF token", address)
            return Response("a sign-out needs the page's CSRF token", 403, media_type="text/plain")
        if found is not None:
            accounts.logout(request.cookies[SESSION_COOKIE])
            accounts.audit(found[0].name, "logout", address=address_of(request))
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    def page(name: str, template: str) -> Callable[[Request], Response]:
        def show(request: Request) -> Response:
            found = session_of(request, accounts)
            if found is None:  # never signed in, or the session expired: to the login page
                return RedirectResponse(f"/login?next={quote(request.url.path)}", 303)
            account, csrf = found
            context = {"account": account, "csrf": csrf, "page": name, "pages": PAGES}
            context.update(request.path_params)
            if name == "review":
                context["topics"] = topics()
            return templates.TemplateResponse(request, template, context)

        return show

    app.get("/console", include_in_schema=False, response_class=HTMLResponse)(
        page("overview", "overview.html")
    )
    app.get("/console/scope/{scope_key}", include_in_schema=False, response_class=HTMLResponse)(
        page("overview", "scope.html")
    )
    for name in PAGES[1:]:
        app.get(f"/console/{name}", include_in_schema=False, response_class=HTMLResponse)(
            page(name, f"{name}.html")
        )
