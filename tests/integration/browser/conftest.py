"""Browser tests: Debian's Chromium driven by Playwright against a live site, a relay and ClickHouse.

Every page a test visits is checked with axe-core. A failing test leaves a
screenshot of the page under `.artifacts/browser/`; `pytest --screenshots DIR`
also saves a named picture of each page along the way (`make screenshots`
refreshes the ones in `docs/screenshots/`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from pytest_django import Settings
from pytest_django.live_server_helper import LiveServer

from tests.support.clickhouse import ClickHouse
from tests.support.project import ROOT
from tests.support.relays import RelayFactory

AXE_SCRIPT = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
FAILURE_SCREENSHOTS = ROOT / ".artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless in a sandbox-less container with no network but loopback: without
# the background-networking flags Chromium spends its time on refused connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The standards the pages are held to.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]

_failed = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Remember on the test item whether its body failed, for the screenshot fixture."""
    report = yield
    if report.when == "call" and report.failed:  # type: ignore[attr-defined]
        item.stash[_failed] = True
    return report


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver, stopped after each module so no event loop outlives the browser tests."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make install` installs Debian's chromium package")
    # Playwright's synchronous API keeps an event loop running in this thread,
    # which Django takes for async code: it would refuse every ORM call of the
    # tests and of their database fixtures while the driver runs.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as driver:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser tab (no cookies); a screenshot is saved if the test fails.

    Tests marked `without_javascript` get a tab whose pages cannot run scripts.
    """
    context = browser.new_context(
        viewport={"width": 1000, "height": 720},
        locale="en-GB",
        java_script_enabled=request.node.get_closest_marker("without_javascript") is None,
    )
    context.set_default_timeout(10_000)
    tab = context.new_page()
    # The browser reports what the Content-Security-Policy refused on its console.
    refused = []
    tab.on(
        "console",
        lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None,
    )
    yield tab
    assert refused == [], "the Content-Security-Policy refused part of a page"
    if request.node.stash.get(_failed, False):
        FAILURE_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = FAILURE_SCREENSHOTS / f"{request.node.name}.png"
        tab.screenshot(path=path, full_page=True)
        print(f"screenshot of the failing page: {path}")
    context.close()


@dataclass
class Site:
    """The live site as one person's browser tab sees it."""

    url: str
    page: Page
    screenshots: Path | None
    javascript: bool = True

    def open(self, path: str) -> Page:
        """Go to a path of the site."""
        self.page.goto(f"{self.url}{path}")
        return self.page

    def check(self, name: str) -> None:
        """Hold the current page to the accessibility rules; save its picture when asked to."""
        # axe-core runs as a script in the page, so only where pages may run scripts.
        if self.javascript:
            assert_styled(self.page)
            assert_accessible(self.page)
        if self.screenshots is not None:
            self.screenshots.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=self.screenshots / f"{name}.png", full_page=True)

    def sign_in(self, email: str, password: str) -> None:
        """Sign in through the sign-in form."""
        self.open("/accounts/login/")
        self.page.get_by_label("E-mail address").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()

    def sign_out(self) -> None:
        """Sign out with the header's button."""
        self.page.get_by_role("button", name="Sign out").click()


@pytest.fixture
def pipeline(clickhouse: ClickHouse, settings: Settings, start_relay: RelayFactory) -> ClickHouse:
    """A relay carrying the site's events into the test run's ClickHouse, which the site reads back."""
    settings.CLICKHOUSE_URL = clickhouse.url
    settings.CLICKHOUSE_DATABASE = clickhouse.database
    settings.CLICKHOUSE_USER = clickhouse.user
    settings.CLICKHOUSE_PASSWORD = clickhouse.password
    settings.CLICKHOUSE_ERASER_USER = clickhouse.user
    settings.CLICKHOUSE_ERASER_PASSWORD = clickhouse.password
    start_relay(poll_interval=0.2)
    return clickhouse


@pytest.fixture
def site(live_server: LiveServer, page: Page, pipeline: ClickHouse, request: pytest.FixtureRequest) -> Site:
    """The site served live, its events flowing to ClickHouse, seen through one browser tab."""
    directory = request.config.getoption("screenshots")
    return Site(
        url=live_server.url,
        page=page,
        screenshots=Path(directory) if directory else None,
        javascript=request.node.get_closest_marker("without_javascript") is None,
    )


def assert_styled(page: Page) -> None:
    """The site's style sheet applies (the CSP lets its inline block through by the response's nonce)."""
    background = page.evaluate("() => getComputedStyle(document.querySelector('header')).backgroundColor")
    assert background == "rgb(29, 29, 31)", "the page is unstyled: was its style refused?"


def assert_accessible(page: Page) -> None:
    """Run axe-core on the page; fail listing every violation of the rules in `AXE_TAGS`."""
    if not AXE_SCRIPT.exists():
        pytest.fail(f"axe-core is missing ({AXE_SCRIPT}): `make install` installs it with npm")
    # Evaluated through the DevTools protocol: a <script> tag would be (rightly) refused by the CSP.
    page.evaluate("() => {" + AXE_SCRIPT.read_text(encoding="utf-8") + "\n}")
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
    violations = [
        {
            "rule": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "where": [n["target"] for n in v["nodes"]],
        }
        for v in result["violations"]
    ]
    assert violations == [], f"{page.url} breaks accessibility rules:\n{json.dumps(violations, indent=2)}"
