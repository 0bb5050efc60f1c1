"""Stored XSS through crawled links, in real headless Chromium against `finsentry api`.

Rows are written straight into the store, as rows kept from before the contract checked links would be,
with every scheme trick at hand. An admin opens the page that lists them and clicks every link. The
canary (a mark on the page, and an admin account the payload tries to create through the API with the
page's CSRF token) must stay untouched. On 0a5b3b2 the `javascript:` links ran and made the account.
Then a script injected into the page is refused by the Content-Security-Policy, and the browser says so.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from accounts import Accounts
from tests.security.conftest import PASSWORD, ApiServer
from trends import Rollups
from trends.rollups import Item

pytestmark = pytest.mark.stack
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCOPE = "entity:evil-corp"
PAYLOAD = (
    "document.body.dataset.pwned='1';fetch('/accounts',{method:'POST',headers:{'Content-Type':"
    "'application/json','X-CSRF-Token':document.querySelector('meta[name=csrf-token]').content},"
    "body:JSON.stringify({name:'mallory',role:'admin',password:'mallory-long-password'})})"
)
HOSTILE_URLS = [
    f"javascript:{PAYLOAD}",
    f"JavaScript:{PAYLOAD}",
    f"  javascript:{PAYLOAD}",
    f"java\tscript:{PAYLOAD}",
    f"java\nscript:{PAYLOAD}",
    f"\x01javascript:{PAYLOAD}",
    f"javascript://%0a{PAYLOAD}",
    f"&#106;avascript:{PAYLOAD}",
    f"javascript&#58;{PAYLOAD}",
    f"jav&#x09;ascript:{PAYLOAD}",
    f"data:text/html,<script>{PAYLOAD}</script>",
    f"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==#{PAYLOAD}",
    "vbscript:msgbox(1)",
    '" onmouseover="' + PAYLOAD,
    "https://news.example/fine-story",  # the one that may be a link
]


@dataclass(frozen=True)
class Scored:
    id: str
    event_time: float
    sentiment: str
    score: float
    keys: tuple[str, ...]


def store_hostile_rows(server: ApiServer) -> None:
    now = time.time()
    events = [Scored(f"evil-{i}", now - i, "negative", -0.9, (SCOPE,)) for i in range(len(HOSTILE_URLS))]
    items = {
        e.id: Item(
            f'Evil Corp story {i} <img src=x onerror="{PAYLOAD}">', "negative", None, "v1", f"src{i}", url
        )
        for i, (e, url) in enumerate(zip(events, HOSTILE_URLS, strict=True))
    }
    Rollups(server.engine).record(events, items)


def test_hostile_links_are_inert_and_inline_scripts_are_refused(
    api_server: ApiServer, tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (./dev installs it)")
    from playwright.sync_api import sync_playwright

    store_hostile_rows(api_server)
    shots = Path(os.environ.get("FINSENTRY_SCREENSHOTS", tmp_path))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.goto(f"{api_server.base}/login?next=/console/scope/{SCOPE}")
        page.fill("input[name=name]", "adm")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("#items tbody tr td:nth-child(4)")
        page.wait_for_function(f"document.querySelectorAll('#items tbody tr').length >= {len(HOSTILE_URLS)}")
        page.screenshot(path=shots / "hostile-links.png", full_page=True)

        # Click every anchor that is not plain http(s), as a curious analyst would (none is left now),
        # until one of them takes the page elsewhere.
        listing = page.url
        for index in range(page.locator("#items a").count()):
            anchor = page.locator("#items a").nth(index)
            if page.url != listing:
                break
            if not (anchor.get_attribute("href", timeout=2000) or "").startswith(("http://", "https://")):
                anchor.click(timeout=2000, no_wait_after=True)
                page.wait_for_timeout(300)  # a payload's request has time to land
        if page.url == listing:
            for cell in page.locator("#items tbody td:nth-child(6)").all():
                cell.click()  # the hostile ones are text now: clicking them does nothing
        page.wait_for_timeout(1000)
        assert page.evaluate("document.body.dataset.pwned") is None, "a hostile link ran in the admin's page"
        assert Accounts(api_server.engine).get("mallory") is None, "the payload made an admin account"
        assert page.evaluate("document.querySelectorAll('#items img').length") == 0, "markup stays text"
        links = page.eval_on_selector_all(
            "#items a", "as => as.map(a => ({href: a.getAttribute('href'), rel: a.rel, text: a.textContent}))"
        )
        assert [link["href"] for link in links] == ["https://news.example/fine-story"], links
        assert set(links[0]["rel"].split()) >= {"noopener", "noreferrer", "nofollow"}

        # An inline script and an inline handler that somehow got into the page are refused by the CSP.
        page.evaluate(
            """() => {
              window.violations = [];
              document.addEventListener('securitypolicyviolation',
                                        (e) => window.violations.push(e.violatedDirective));
              const handler = '<img src="/nothing" onerror="document.body.dataset.inline=1">';
              document.body.insertAdjacentHTML('beforeend', handler);
              const script = document.createElement('script');
              script.textContent = 'document.body.dataset.inline = 2';
              document.body.appendChild(script);
            }"""
        )
        page.wait_for_function("window.violations.length >= 2", timeout=5000)
        violated = page.evaluate("window.violations")
        assert any(v.startswith("script-src") for v in violated), violated
        assert page.evaluate("document.body.dataset.inline") is None
        browser.close()
    assert Accounts(api_server.engine).get("mallory") is None, "the payload made an admin account"
