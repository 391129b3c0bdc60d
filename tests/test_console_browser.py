"""The console in a real browser (Debian's chromium driven by Playwright) against a live
``rollout serve``: berlin's plant IT rolls berlin back and watches it happen without a
reload, and finds detroit neither listed nor reachable; a release engineer approves a paused
rollout and watches the next wave run. With ROLLOUT_SCREENSHOTS=DIR the pages are saved there."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from consolekit import ConsoleProject, console_project
from playwright.sync_api import Browser, Page, expect, sync_playwright
from servekit import Server

from netplan import console_address

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",  # the tests run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # this machine's closed network refuses Chromium's own calls
    "--disable-component-update",
    "--disable-sync",
]
LIVE_MS = 90_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ConsoleProject, Server]]:
    made = console_project(tmp_path)
    server = Server(made.root, console_address(21))
    yield made, server
    server.stop()
    made.dp.stop_services()


def sign_in(page: Page, server: Server, token: str) -> None:
    page.goto(f"{server.url}/signin")
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Network")


def shot(page: Page, name: str) -> None:
    folder = os.environ.get("ROLLOUT_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"console-{name}.png"), full_page=True)


def test_plant_it_rolls_berlin_back_and_never_meets_detroit(browser: Browser, served) -> None:
    made, server = served
    page = browser.new_page(viewport={"width": 412, "height": 915})  # a phone on the shop floor
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, server, made.tokens["bert"])
    assert page.locator("tr[data-plant=berlin]").count() == 1
    assert "detroit" not in page.content(), "berlin's plant IT sees detroit in the network"
    page.click("a[href='/plants/berlin']")
    expect(page.locator("#plant-state")).to_have_text("healthy")
    page.evaluate("window.__stayed = true")  # gone if the page reloads
    page.fill("#reason", "scanner firmware on line 3 misbehaves with v2")
    page.fill("#confirm", "berlin")
    page.click("#do-rollback")
    expect(page.locator("#plant-state")).to_have_text("rolled back", timeout=LIVE_MS)
    assert page.evaluate("window.__stayed === true"), "the page reloaded to show the rollback"
    expect(page.locator("#live")).to_contain_text("scanner firmware on line 3")
    page.goto(f"{server.url}/history")
    expect(page.locator("#live")).to_contain_text("scanner firmware on line 3 misbehaves with v2")
    assert "detroit" not in page.content()
    refused = page.goto(f"{server.url}/plants/detroit")
    assert refused is not None and refused.status == 403, "berlin's plant IT reached detroit's page"
    expect(page.locator("h1")).to_have_text("Not allowed")
    api = page.request.get(f"{server.url}/api/v1/plants/detroit")
    assert api.status == 403, "berlin's plant IT reached detroit through the API with its session"
    made.dp.assert_whole("berlin", "v1")
    made.dp.assert_whole("detroit", "v1")
    page.close()


def test_a_release_engineer_approves_and_watches_the_next_wave(browser: Browser, served) -> None:
    made, server = served
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, server, made.tokens["rita"])
    expect(page.locator("tr[data-plant=detroit]")).to_contain_text("v1")
    shot(page, "network")
    page.goto(f"{server.url}/rollouts/{made.paused}")
    expect(page.locator("#rollout-state")).to_have_text("paused")
    expect(page.locator("#live")).to_contain_text("waiting for approval")
    page.evaluate("window.__stayed = true")
    page.fill("#reason-approve", "berlin ran v2 for a shift without a fault")
    page.click("#do-approve")
    expect(page.locator("#live")).to_contain_text("approved by rita", timeout=LIVE_MS)
    expect(page.locator("#rollout-state")).to_have_text("finished", timeout=LIVE_MS)
    expect(page.locator("tr[data-plant=detroit]")).to_contain_text("updated")
    assert page.evaluate("window.__stayed === true"), "the page reloaded while the wave ran"
    shot(page, "rollout")
    page.goto(f"{server.url}/plants/detroit")
    expect(page.locator("#plant-state")).to_have_text("healthy")
    shot(page, "plant")
    made.dp.assert_whole("detroit", "v2")
    page.close()


def test_the_pages_read_and_act_without_javascript(browser: Browser, served) -> None:
    made, server = served
    context = browser.new_context(java_script_enabled=False, viewport={"width": 412, "height": 915})
    page = context.new_page()
    sign_in(page, server, made.tokens["bert"])
    expect(page.locator("tr[data-plant=berlin]")).to_contain_text("healthy")
    page.goto(f"{server.url}/plants/berlin")
    page.fill("#reason", "no script on this terminal")
    page.fill("#confirm", "berlin")
    page.click("#do-rollback")  # a plain form post: the job's page answers
    expect(page.locator("h1")).to_contain_text("Rollback of berlin")
    deadline_ms = LIVE_MS
    while deadline_ms > 0 and page.locator("#job-state").inner_text() in ("queued", "running"):
        page.wait_for_timeout(500)  # no script: the person reloads to see it move
        deadline_ms -= 500
        page.reload()
    expect(page.locator("#job-state")).to_have_text("done")
    made.dp.assert_whole("berlin", "v1")
    context.close()
