"""A seller in headless Chromium in, price, range, reasons, comparables and a stored accepted price out."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from tests.support.servers import LISTING, Server

pytestmark = pytest.mark.integration


def test_seller_gets_a_price_with_reasons_and_comparables_and_accepts_it(
    server: Server, browser: Any
) -> None:
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    console = _console_errors(page)
    response = page.goto(server.base_url + "/")
    assert response is not None
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert page.title().startswith("pricewise")
    categories = page.locator("#category_name option").all_inner_texts()
    assert "Men/Shoes/Athletic" in categories
    page.fill("#name", "Nike Air Max 90 size 10")
    page.fill("#brand_name", "Nike")
    page.select_option("#category_name", "Men/Shoes/Athletic")
    page.check("input[name=item_condition_id][value='2']")
    page.check("#shipping")
    page.fill("#item_description", "Worn twice, no box.")
    page.click("#suggest")
    page.wait_for_selector("#result:not([hidden])", timeout=15_000)

    price = float(page.inner_text("#price").lstrip("$"))
    low = float(page.inner_text("#low").lstrip("$"))
    high = float(page.inner_text("#high").lstrip("$"))
    assert 0 < low <= price <= high
    slider = page.locator("#chosen")
    assert float(slider.get_attribute("min") or 0) == pytest.approx(low)
    assert float(slider.get_attribute("max") or 0) == pytest.approx(high)
    reasons = page.locator("#reasons li").all_inner_texts()
    assert any("nike" in r.lower() for r in reasons), reasons
    comparables = page.locator("#comparables li").all_inner_texts()
    assert len(comparables) == 5
    assert all("$" in c for c in comparables)

    slider.fill(str(high))  # the seller drags towards "top price"
    assert page.inner_text("#chosen-value") == f"${high:.2f}"
    page.click("#accept")
    page.wait_for_selector("#accepted:not([hidden])", timeout=10_000)
    request_id = page.inner_text("#model-line").rsplit("request ", 1)[1]
    page.close()
    assert not [text for text in console if "Content Security Policy" in text], console

    log = server.prediction_log()
    try:
        with log.engine.connect() as connection:
            rows = connection.execute(
                select(log.feedback.c.chosen_price).where(log.feedback.c.request_id == request_id)
            ).all()
    finally:
        log.close()
    assert [row[0] for row in rows] == [pytest.approx(high)]
    assert all(url.startswith(server.base_url) for url in requested), "the page loads nothing from elsewhere"


def _console_errors(page: Any) -> list[str]:
    """The page's console errors as they come (a blocked script, style or request shows up here)."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_the_monitoring_page_draws_its_charts_under_its_content_security_policy(
    server: Server, browser: Any
) -> None:
    page = browser.new_page()
    console = _console_errors(page)
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "console.error('Content Security Policy violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    with server.client() as client:  # traffic to chart
        assert client.post("/v1/suggestions", json=LISTING).status_code == 200
    drawn = 0
    for _ in range(5):  # the page's figures are recomputed every few seconds
        response = page.goto(server.base_url + "/monitoring")
        assert response is not None
        page.wait_for_load_state("networkidle")
        drawn = page.locator("canvas[data-drawn=true]").count()
        if drawn:
            break
        time.sleep(2)
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert drawn > 0, "Chart.js ran and drew the traffic chart"
    violations = [text for text in console if "Content Security Policy" in text]
    page.close()
    assert not violations, violations


def test_a_form_without_title_shows_an_error_and_no_result(server: Server, browser: Any) -> None:
    page = browser.new_page()
    page.goto(server.base_url + "/")
    page.click("#suggest")
    page.wait_for_selector("#error:not([hidden])", timeout=5_000)
    assert "title" in page.inner_text("#error").lower()
    assert page.locator("#result").is_hidden()
    page.close()
