"""A seller in headless Chromium at desktop and phone widths in; price, range, reasons, comparables, notices, a
layout that fits and a stored accepted price out."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.support.servers import LISTING, Server

pytestmark = pytest.mark.integration

SUGGESTIONS = re.compile(r"/v1/suggestions\?")
CONDITION_WORDS = {1: "New", 2: "Like new", 3: "Good", 4: "Fair", 5: "Poor"}
REPORT_POLICY_VIOLATIONS = (
    "document.addEventListener('securitypolicyviolation', e => "
    "console.error('Content Security Policy violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
)


def _console_errors(page: Any) -> list[str]:
    """The page's console errors as they come (a blocked script, style or request shows up here)."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def _open_seller_page(server: Server, browser: Any, width: int, height: int) -> tuple[Any, dict[str, Any]]:
    """A page at this viewport on the seller page, with what it logs and requests recorded."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.add_init_script(REPORT_POLICY_VIOLATIONS)
    seen: dict[str, Any] = {"console": _console_errors(page), "requested": [], "answered": {}}
    page.on("request", lambda request: seen["requested"].append(request.url))
    page.on("response", lambda response: seen["answered"].__setitem__(response.url, response.status))
    response = page.goto(server.base_url + "/")
    assert response is not None
    assert response.status == 200
    seen["headers"] = response.headers
    page.wait_for_load_state("networkidle")
    return page, seen


def _fill_listing(page: Any, category: str = "Men/Shoes/Athletic") -> None:
    page.fill("#name", "Nike Air Max 90 size 10")
    # Typing into a field with suggestions opens their list over the form; Escape closes it, as a seller would.
    page.fill("#brand_name", "Nike")
    page.press("#brand_name", "Escape")
    page.fill("#category_name", category)
    page.press("#category_name", "Escape")
    page.check("input[name=item_condition_id][value='2']")
    page.check("#shipping")
    page.fill("#item_description", "Worn twice, no box.")


def _submit_with(page: Any, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Submit the form once with the API's real answer changed by `change` (fields the API may or may not send
    yet); returns the body the page was given."""
    given: dict[str, Any] = {}

    def handle(route: Any) -> None:
        answer = route.fetch()
        body = answer.json()
        change(body)
        given.update(body)
        route.fulfill(response=answer, body=json.dumps(body), content_type="application/json")

    page.route(SUGGESTIONS, handle)
    try:
        with page.expect_response(SUGGESTIONS):
            page.click("#suggest")
        page.wait_for_function("() => !document.getElementById('suggest').disabled")
    finally:
        page.unroute(SUGGESTIONS)
    return given


def _js_round(value: float) -> int:
    return math.floor(value + 0.5)


def _expected_reasons(body: dict[str, Any], direction: str) -> list[str]:
    """What the page shows for each reason: the API's sentence, else the word and its effect."""
    sign = "+" if direction == "up" else "-"
    return [
        r.get("text") or f"{r['feature']} ({sign}{_js_round(abs(r['effect']) * 100)}%)"
        for r in body["explanation"][direction]
    ]


def _assert_result_matches(page: Any, body: dict[str, Any]) -> None:
    """The price, range sentence, reasons and comparables on the page are the ones in the API's answer."""
    price, low, high = (float(page.inner_text(f"#{key}").lstrip("$")) for key in ("price", "low", "high"))
    assert [price, low, high] == pytest.approx([body["price"], body["low"], body["high"]])
    assert 0 < low <= price <= high
    tenths = _js_round(body["coverage"] * 10)
    assert abs(body["coverage"] * 10 - tenths) < 0.25, "the shipped coverage is a whole number of tenths"
    assert page.inner_text("#range") == (
        f"Price range: ${body['low']:.2f} to ${body['high']:.2f}.\n"
        f"About {tenths} in 10 past listings like this one sold inside a range drawn this way."
    )
    assert "Most similar items sold between" not in page.inner_text("#result")
    slider = page.locator("#chosen")
    assert float(slider.get_attribute("min") or 0) == pytest.approx(low)
    assert float(slider.get_attribute("max") or 0) == pytest.approx(high)

    ups = page.locator("#reasons-up li").all_inner_texts()
    downs = page.locator("#reasons-down li").all_inner_texts()
    assert [u.lstrip("▲ ").strip() for u in ups] == _expected_reasons(body, "up")
    assert [d.lstrip("▼ ").strip() for d in downs] == _expected_reasons(body, "down")
    assert ups or downs, "the main model explains its price"

    comparables = body["comparables"]
    assert len(comparables) <= 5  # serve.comparables
    if not comparables:
        assert page.locator("#comparables li").all_inner_texts() == ["No similar listings found."]
    names = page.locator("#comparables .comparable-name").all_inner_texts()
    details = page.locator("#comparables .comparable-details").all_inner_texts()
    prices = page.locator("#comparables .comparable-price").all_inner_texts()
    assert names == [c["name"] for c in comparables]
    assert details == [
        f"{c['brand_name'] or 'no brand'} · {c.get('condition') or CONDITION_WORDS[c['item_condition_id']]}"
        for c in comparables
    ]
    assert prices == [f"${c['price']:.2f}" for c in comparables]

    confidence = body.get("confidence") or {}
    if confidence.get("level") == "low":
        assert page.locator("#low-confidence").is_visible()
        assert page.locator("#unfamiliar li").all_inner_texts() == confidence["unfamiliar"]
        assert page.locator("#what-if li").all_inner_texts() == [
            w["text"] for w in confidence["what_if"] or []
        ]
    else:
        assert page.locator("#low-confidence").is_hidden(), "no notice for a normal estimate"


def _box(page: Any, selector: str) -> dict[str, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is laid out"
    return dict(box)


def _assert_fits(page: Any, width: int) -> None:
    """Nothing scrolls sideways and every field, the result and the notices sit inside the viewport."""
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    fields = ("#name", "#brand_name", "#category_name", "#item_description", "#suggest", "#result")
    notices = ("#category-warning", "#low-confidence", "#error")
    for selector in fields + tuple(n for n in notices if page.locator(n).is_visible()):
        box = _box(page, selector)
        assert box["x"] >= 0, (selector, box)
        assert box["x"] + box["width"] <= width, (selector, box)


def _png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return int(width), int(height)


def _screenshot(page: Any, tmp_path: Path, width: int) -> None:
    """A full-page screenshot as wide as the viewport (nothing drawn past its right edge), kept for review when
    PRICEWISE_SCREENSHOTS_DIR is set."""
    path = tmp_path / f"after-{width}.png"
    page.screenshot(path=str(path), full_page=True)
    shot_width, shot_height = _png_size(path)
    assert shot_width == width
    result = _box(page, "#result")
    assert result["x"] + result["width"] <= shot_width
    assert result["y"] + result["height"] <= shot_height
    keep = os.environ.get("PRICEWISE_SCREENSHOTS_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(keep) / path.name)


def _with_api_sentences_and_low_confidence(body: dict[str, Any]) -> None:
    for direction in ("up", "down"):
        for reason in body["explanation"][direction]:
            reason["text"] = f"The words '{reason['feature']}' move the price"
    for comparable in body["comparables"]:
        comparable["condition"] = f"As described (code {comparable['item_condition_id']})"
    body["confidence"] = {
        "level": "low",
        "unfamiliar": ["Few past listings share this brand and category."],
        "what_if": [
            {
                "field": "brand_name",
                "value": "Nike",
                "price": body["price"] * 1.2,
                "change": 0.2,
                "text": "With the brand Nike it would be about 20% more.",
            }
        ],
    }


def _without_new_fields_and_normal_confidence(body: dict[str, Any]) -> None:
    for direction in ("up", "down"):
        for reason in body["explanation"][direction]:
            reason.pop("text", None)
    for comparable in body["comparables"]:
        comparable.pop("condition", None)
    body["confidence"] = {
        "level": "normal",
        "unfamiliar": ["This sentence is never shown for a normal estimate."],
        "what_if": None,
    }


def test_a_seller_at_desktop_width_prices_a_listing_sees_reasons_comparables_and_accepts_it(
    server: Server, browser: Any, tmp_path: Path
) -> None:
    page, seen = _open_seller_page(server, browser, 1280, 900)
    assert "frame-ancestors 'none'" in seen["headers"]["content-security-policy"]
    assert seen["headers"]["x-frame-options"] == "DENY"
    assert page.title().startswith("pricewise")
    offered = page.eval_on_selector_all("#categories option", "options => options.map(o => o.value)")
    assert "Men/Shoes/Athletic" in offered
    brands = page.eval_on_selector_all("#brands option", "options => options.map(o => o.value)")
    assert "Nike" in brands
    icon = [url for url in seen["answered"] if url.endswith("/static/favicon.svg")]
    assert [seen["answered"][url] for url in icon] == [200], "Chromium fetched the linked icon"
    assert not [url for url in seen["requested"] if url.endswith("/favicon.ico")]

    # The request is held until the test lets it through: the button stays disabled meanwhile, and a second
    # submit (the Enter key, a double click) sends nothing.
    _fill_listing(page)
    held: list[Any] = []

    def hold(route: Any) -> None:
        held.append(route)

    page.route(SUGGESTIONS, hold)
    page.click("#suggest")
    page.wait_for_function("() => document.getElementById('suggest').disabled")
    assert page.inner_text("#suggest") == "Pricing..."
    page.evaluate("document.getElementById('listing-form').requestSubmit()")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    page.wait_for_timeout(300)
    assert len(held) == 1, "one request in flight, however often the seller submits"
    with page.expect_response(SUGGESTIONS) as answered:
        held[0].continue_()
    body = answered.value.json()
    page.unroute(SUGGESTIONS)
    page.wait_for_selector("#result:not([hidden])", timeout=15_000)
    page.wait_for_function("() => !document.getElementById('suggest').disabled")
    assert page.inner_text("#suggest") == "Suggest a price"

    _assert_result_matches(page, body)
    assert body["comparables"], "a listing like many in the sample has similar sold listings"
    reasons = page.locator("#reasons li").all_inner_texts()
    assert any("nike" in r.lower() for r in reasons), reasons
    assert page.locator("#category-warning").is_hidden(), "an offered category needs no warning"
    up, down, up_items, down_items = page.evaluate(
        "[...['#reasons-up-block h4', '#reasons-down-block h4']"
        ".map(s => getComputedStyle(document.querySelector(s)).color),"
        " ...['#reasons-up li', '#reasons-down li']"
        ".map(s => [...document.querySelectorAll(s)].map(e => getComputedStyle(e).borderLeftColor))]"
    )
    assert up != down, "raising and lowering reasons look different"
    assert set(up_items) <= {up}, (up, up_items)
    assert set(down_items) <= {down}, (down, down_items)

    why, similar = _box(page, "#why"), _box(page, "#similar")
    assert why["x"] + why["width"] <= similar["x"], "two columns side by side"
    assert abs(why["y"] - similar["y"]) < 1
    _assert_fits(page, 1280)
    _screenshot(page, tmp_path, 1280)

    high = float(page.inner_text("#high").lstrip("$"))
    page.locator("#chosen").fill(str(high))  # the seller drags towards "top price"
    assert page.inner_text("#chosen-value") == f"${high:.2f}"
    page.click("#accept")
    page.wait_for_selector("#accepted:not([hidden])", timeout=10_000)
    request_id = page.inner_text("#model-line").rsplit("request ", 1)[1]
    assert request_id == body["request_id"]

    # An answer with the API's sentences and a low confidence: the sentences are shown as sent, with a notice.
    given = _submit_with(page, _with_api_sentences_and_low_confidence)
    _assert_result_matches(page, given)
    assert page.locator("#low-confidence").is_visible()
    assert page.locator("#what-if li").all_inner_texts() == [
        "With the brand Nike it would be about 20% more."
    ]
    assert not seen["console"], seen["console"]

    # The network drops: a clear error, and the button is usable again.
    page.route(SUGGESTIONS, lambda route: route.abort("internetdisconnected"))
    page.click("#suggest")
    page.wait_for_selector("#error:not([hidden])", timeout=5_000)
    assert page.inner_text("#error").startswith("Could not reach the pricing service")
    page.wait_for_function("() => !document.getElementById('suggest').disabled")
    assert page.inner_text("#suggest") == "Suggest a price"
    page.unroute(SUGGESTIONS)
    page.close()
    assert all("ERR_INTERNET_DISCONNECTED" in text for text in seen["console"]), seen["console"]

    log = server.prediction_log()
    try:
        with log.engine.connect() as connection:
            rows = connection.execute(
                select(log.feedback.c.chosen_price).where(log.feedback.c.request_id == request_id)
            ).all()
    finally:
        log.close()
    assert [row[0] for row in rows] == [pytest.approx(high)]
    assert all(url.startswith(server.base_url) for url in seen["requested"]), "nothing loads from elsewhere"


def test_a_seller_on_a_phone_gets_one_column_that_fits_and_is_warned_of_an_unknown_category(
    server: Server, browser: Any, tmp_path: Path
) -> None:
    page, seen = _open_seller_page(server, browser, 390, 844)
    page.click("#suggest")
    page.wait_for_selector("#error:not([hidden])", timeout=5_000)
    assert "title" in page.inner_text("#error").lower()
    assert page.locator("#result").is_hidden()

    _fill_listing(page, category="Men/Shoes/Moon boots")
    with page.expect_response(SUGGESTIONS) as answered:
        page.click("#suggest")
    sent = json.loads(answered.value.request.post_data or "{}")
    assert sent["category_name"] == "Men/Shoes/Moon boots", "the typed category is sent as typed"
    page.wait_for_selector("#result:not([hidden])", timeout=15_000)
    warning = page.inner_text("#category-warning")
    assert "Men/Shoes/Moon boots" in warning
    assert "not one of the offered categories" in warning
    _assert_result_matches(page, answered.value.json())

    why, similar = _box(page, "#why"), _box(page, "#similar")
    assert similar["y"] >= why["y"] + why["height"], "the columns stack"
    assert abs(why["x"] - similar["x"]) < 1
    _assert_fits(page, 390)
    _screenshot(page, tmp_path, 390)

    # An answer without the sentences and condition words: the page words them itself; a normal confidence
    # never shows the notice.
    page.fill("#category_name", "Men/Shoes/Athletic")
    given = _submit_with(page, _without_new_fields_and_normal_confidence)
    _assert_result_matches(page, given)
    assert page.locator("#category-warning").is_hidden()
    assert page.locator("#low-confidence").is_hidden()
    assert "never shown" not in page.inner_text("#result")
    assert not page.locator("#unfamiliar li").all_inner_texts(), "nothing of a normal estimate is listed"
    _assert_fits(page, 390)
    page.close()
    assert not seen["console"], seen["console"]


def test_the_monitoring_page_draws_its_charts_under_its_content_security_policy(
    server: Server, browser: Any
) -> None:
    page = browser.new_page()
    console = _console_errors(page)
    page.add_init_script(REPORT_POLICY_VIOLATIONS)
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
