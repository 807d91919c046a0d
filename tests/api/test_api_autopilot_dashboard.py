"""The dashboard's autopilot panel in headless Chromium against a real server: hidden without an
autopilot; with one, it lists the decisions (status, transactions, why) and plots each host's predicted
CPU utilisation over the passes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_harness import HOST, OPERATOR, VIEWER, Server, spawn_args
from test_api_autopilot import LOAD, app_state, attach
from test_api_dashboard import ARGS, CHROMIUM, sign_in

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def test_the_panel_shows_decisions_and_utilisation_over_time(
    server: Server, browser: sync_api.Browser
) -> None:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
    try:
        sign_in(page, server, VIEWER)
        assert page.is_hidden("#autopilot-panel")  # no autopilot on this server yet
        for name in LOAD:
            r = server.client(OPERATOR).post(
                "/v1/transactions", json={"procedure": "spawn_vm", "args": spawn_args(name)}
            )
            assert server.wait_final(r.json()["id"])["state"] == "COMMITTED"
        c = attach(server)
        c.run_once("periodic")  # relieves host-01
        c.run_once("periodic")  # nothing hot any more
        page.wait_for_selector("#autopilot-panel:not([hidden])", timeout=15_000)
        page.wait_for_selector('#autopilot-decisions tr[data-status="acted"]', timeout=15_000)
        acted = page.inner_text('#autopilot-decisions tr[data-status="acted"]')
        assert "migrate_vm" in acted and "COMMITTED" in acted and "hotspot" in acted
        idle = page.inner_text('#autopilot-decisions tr[data-status="idle"]')
        assert "no host above 90%" in idle
        line = page.wait_for_selector(f'#autopilot-svg polyline[data-host="{HOST}"]', timeout=15_000)
        assert line is not None and len(str(line.get_attribute("points")).split()) == 2  # two passes
        assert "hotspot" in page.inner_text("#autopilot-status")
        assert not errors, errors
    finally:
        app_state(server).autopilot = None
        context.close()
