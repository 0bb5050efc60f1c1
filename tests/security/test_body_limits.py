"""Oversized bodies are refused before they cost memory or disk: declared, chunked and lying ones.

On 0a5b3b2 a 300 MiB form POST to /login was read whole into memory (the form is parsed before the
route runs) and a multipart upload to /labels/import was spooled to a temporary file before the 401.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable

import pytest

from tests.security.conftest import ApiServer

MiB = 2**20
pytestmark = pytest.mark.stack


def raw_request(
    server: ApiServer,
    head: str,
    body_chunks: int,
    chunk: bytes = b"x" * MiB,
    chunked: bool = False,
    while_sending: Callable[[], None] = lambda: None,
) -> tuple[bytes, float, int]:
    """Sends the request line and headers, then up to `body_chunks` chunks of the body until the server
    answers or hangs up; returns (the answer's first bytes, seconds to the answer, bytes sent)."""
    host, port = server.base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(30)
    started = time.monotonic()
    sent = 0
    try:
        sock.sendall(head.encode())
        for _ in range(body_chunks):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the server has answered already
            piece = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            while_sending()
        answer = sock.recv(65536)
        seconds = time.monotonic() - started
        return _rest_of_answer(sock, answer), seconds, sent
    finally:
        sock.close()


def _rest_of_answer(sock: socket.socket, answer: bytes) -> bytes:
    """Reads on until the answer's headers and its Content-Length of body are in (or the line goes quiet)."""
    sock.settimeout(2)
    while True:
        head, ended, body = answer.partition(b"\r\n\r\n")
        fields = (line.partition(b":") for line in head.split(b"\r\n"))
        length = next((int(v) for k, _, v in fields if k.lower() == b"content-length"), 0)
        if ended and len(body) >= length:
            return answer
        try:
            more = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return answer
        if not more:
            return answer
        answer += more


@pytest.mark.parametrize(
    ("path", "kind"), [("/silences", "application/json"), ("/login", "application/x-www-form-urlencoded")]
)
def test_a_300_mib_post_is_refused_at_once_and_costs_no_memory(
    api_server: ApiServer, path: str, kind: str
) -> None:
    """On 0a5b3b2 FastAPI read a JSON body whole before asking for the account: 300 MiB to /silences
    took 1.3 s and grew the API from 114 to 715 MiB."""
    before = api_server.rss_bytes()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\nContent-Length: {300 * MiB}\r\n\r\n"
    answer, seconds, sent = raw_request(api_server, head, 300)
    grown = api_server.rss_bytes() - before
    assert grown <= 50 * MiB, f"the API grew by {grown / MiB:.0f} MiB"
    assert seconds < 1.0, f"answered after {seconds:.2f}s"
    assert sent < 300 * MiB
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"error": "body_too_large"' in answer or b'"error":"body_too_large"' in answer


@pytest.mark.parametrize("path", ["/login", "/labels", "/silences"])
def test_a_chunked_body_is_cut_off_at_the_limit(api_server: ApiServer, path: str) -> None:
    before = api_server.rss_bytes()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    answer, seconds, sent = raw_request(api_server, head, 300, chunked=True)
    status = answer.split(b" ", 2)[1]
    # /login reads its form before anything else: cut at the limit. /labels asks for an account first and
    # never reads an anonymous body; /silences declares a JSON body, which FastAPI reads first: cut too.
    assert status == {"/login": b"413", "/labels": b"401", "/silences": b"413"}[path], answer[:300]
    assert sent <= 64 * MiB, f"{sent / MiB:.0f} MiB went in before the answer"
    assert seconds < 5.0
    assert api_server.rss_bytes() - before <= 50 * MiB


def test_a_lying_content_length_cannot_smuggle_more_than_it_declares(api_server: ApiServer) -> None:
    """The server reads what Content-Length says and no more: the rest is the next request, which is
    refused as garbage, not appended to the body."""
    body = b"name=ana&password=x&csrf=y"
    head = (
        "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    answer, _, _ = raw_request(api_server, head + body.decode(), 2, chunk=b"z" * MiB)
    assert answer.split(b" ", 2)[1] in (b"403", b"400"), answer[:200]  # a form with a wrong CSRF token


def test_an_oversized_upload_never_touches_the_disk(api_server: ApiServer) -> None:
    boundary = "b0undary"
    prologue = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
        "Content-Type: text/csv\r\n\r\ntext,sentiment\r\n"
    )
    seen: list[str] = []

    def look() -> None:
        seen.extend(api_server.open_temp_files())

    for headers, chunked in (
        ("", False),  # anonymous, declared: 413 before a byte is read
        ("", True),  # anonymous, chunked: 401 before the body is read
        (f"Authorization: {api_server.token('ana')['Authorization']}\r\n", True),  # over the 4 MiB limit
        (f"Authorization: {api_server.token('ana')['Authorization']}\r\n", False),
    ):
        length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {200 * MiB}"
        head = (
            f"POST /labels/import HTTP/1.1\r\nHost: x\r\n{headers}"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n{length}\r\n\r\n"
        )
        if chunked:
            head += f"{len(prologue):x}\r\n{prologue}\r\n"
        else:
            head += prologue
        answer, _, sent = raw_request(api_server, head, 200, chunked=chunked, while_sending=look)
        assert answer.split(b" ", 2)[1] in (b"401", b"413"), answer[:300]
        assert sent <= 64 * MiB
    assert seen == [], f"temporary files opened: {seen[:3]}"


def test_a_small_upload_still_works_in_memory(api_server: ApiServer) -> None:
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.extend(api_server.open_temp_files())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    rows = "text,sentiment\n" + "".join(f"Shares of Acme rose {i}%,positive\n" for i in range(50_000))
    with api_server.client() as client:
        answer = client.post(
            "/labels/import", files={"file": ("many.csv", rows.encode())}, headers=api_server.token("ana")
        )
    stop.set()
    watcher.join()
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"]["inserted"] == 50_000
    assert seen == []


@pytest.mark.parametrize("first", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"])
def test_a_client_that_trickles_its_headers_is_cut_off(api_server: ApiServer, first: bytes) -> None:
    """Slowloris: a byte now and then holds a connection for ever unless the server has a header timeout,
    on a connection's first request and on the next one of a kept-alive connection."""
    host, port = api_server.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        if first:
            sock.sendall(first)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 20:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            readable, _, _ = select.select([sock], [], [], 1.0)
            if readable and sock.recv(4096) == b"":
                closed = True
                break
        assert closed, "the connection was still open after 20 s of trickled headers"
        assert time.monotonic() - started < 15


def test_oversized_headers_are_refused(api_server: ApiServer) -> None:
    head = f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 32 * 1024}\r\n\r\n"
    answer, _, _ = raw_request(api_server, head, 0)
    assert answer.split(b" ", 2)[1] == b"431", answer[:200]
