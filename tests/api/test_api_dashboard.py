"""End to end: the dashboard in headless Chromium (Debian's ``chromium``, driven by Playwright for Python)
against a real server. A transaction submitted through the API appears on the page and reaches COMMITTED
live; its timeline, the resource tree and the counters follow."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_harness import HOST, OPERATOR, VIEWER, Server, spawn_args

CHROMIUM = Path(os.environ.get("TROPIC_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: run scripts/install-chromium.sh (Debian's chromium package)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: sync_api.Browser) -> Iterator[sync_api.Page]:
    context = browser.new_context()
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    # Console errors count too (e.g. a CSP refusal), except the browser's note on an expected 401.
    p.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "status of 401" not in m.text else None,
    )
    yield p
    context.close()
    assert not errors, errors  # no script errors, no CSP violations


def sign_in(page: sync_api.Page, server: Server, token: str) -> None:
    page.goto(server.url + "/")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#main:not([hidden])")
    page.wait_for_selector("#live.on")  # the event stream is connected


def test_submitted_transaction_appears_and_commits_live(server: Server, page: sync_api.Page) -> None:
    sign_in(page, server, VIEWER)
    assert "vera (viewer)" in page.inner_text("#who")
    assert page.is_hidden("#submit-panel")  # viewers cannot submit

    r = server.client(OPERATOR).post(
        "/v1/transactions", json={"procedure": "spawn_vm", "args": spawn_args("web-e2e")}
    )
    txn = r.json()["id"]
    row = f'#txns tr[data-txn-id="{txn}"]'
    page.wait_for_selector(row, timeout=10_000)
    page.wait_for_selector(f'{row}[data-state="COMMITTED"]', timeout=10_000)
    assert "spawn_vm" in page.inner_text(row) and "otto" in page.inner_text(row)

    # The timeline: forward steps with durations and the action log.
    page.click(row)
    page.wait_for_selector(f'#timeline[data-txn-id="{txn}"][data-state="COMMITTED"]')
    timeline = page.inner_text("#timeline")
    assert "create_vm" in timeline and "clone_image" in timeline and "Action log" in timeline
    assert page.locator("#timeline .step").count() == 4

    # The resource tree shows the new VM once its host is expanded.
    # /compute is open from the start; open the region and the host.
    page.click('li[data-path="/compute/us-east"] > .node-row .toggle')
    page.click(f'li[data-path="{HOST}"] > .node-row .toggle')
    page.wait_for_selector(f'li[data-path="{HOST}/web-e2e"][data-kind="vm"]')

    # The counters follow (the page's CSP forbids eval, so wait on the DOM rather than a JS predicate).
    sync_api.expect(page.locator("[data-counter=committed] .value")).not_to_have_text("0", timeout=5_000)


def test_violation_timeline_and_operator_submit_form(server: Server, page: sync_api.Page) -> None:
    sign_in(page, server, OPERATOR)
    page.wait_for_selector("#submit-panel:not([hidden])")
    page.select_option("#procedure", "spawn_vm")
    page.fill("input[name=host]", HOST)
    page.fill("input[name=name]", "too-big")
    page.fill("input[name=image]", spawn_args("x")["image"])
    page.fill("input[name=vcpus]", "1")
    page.fill("input[name=memory_mib]", "99999999")
    page.click("#submit-form button[type=submit]")
    page.wait_for_selector('#timeline[data-state="ABORTED"]', timeout=10_000)
    violation = page.inner_text("#timeline .box.violation")
    assert "Host.memory_fits" in violation and HOST in violation


def test_a_refused_token_shows_the_sign_in_form(server: Server, page: sync_api.Page) -> None:
    page.goto(server.url + "/")
    page.fill("#token", "not-a-token-not-a-token")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:has-text('refused')")
    assert page.is_hidden("#main")


def test_capacity_panel_shows_used_and_free_per_region_and_host(server: Server, page: sync_api.Page) -> None:
    sign_in(page, server, VIEWER)
    row = f'#capacity tr[data-path="{HOST}"]'
    page.wait_for_selector(row)
    before = int(page.get_attribute(row, "data-memory-used") or "0")
    r = server.client(OPERATOR).post(
        "/v1/transactions", json={"procedure": "spawn_vm", "args": spawn_args("cap-e2e", memory_mib=768)}
    )
    assert r.status_code == 202
    # the panel follows the event stream: the host's used memory grows by the new VM's
    page.wait_for_selector(f'{row}[data-memory-used="{before + 768}"]', timeout=10_000)
    used, free = server.controller.call(
        lambda: (server.model.index.used(HOST)[1], server.model.nodes[HOST].attrs["memory_mib"])
    )
    assert page.get_attribute(row, "data-memory-free") == str(free - used)
    region = '#capacity tr[data-path="/compute/us-east"][data-kind="region"]'
    assert int(page.get_attribute(region, "data-memory-used") or "0") >= before + 768
    assert "cap-e2e" not in page.inner_text("#capacity")  # hosts and regions, not VMs
    assert "MiB" in page.inner_text(row) or "GiB" in page.inner_text(row)
