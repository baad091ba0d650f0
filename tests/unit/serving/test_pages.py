"""The running app's seller page in (GET / through a TestClient); its form, lists and notices as HTML out.

What the script does with a suggestion is tested in Chromium (tests/integration/test_serving_page.py); these
tests read the page the server renders: the fields, the categories and brands it offers, what starts hidden.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pricewise.models.suggester import PriceSuggester
from pricewise.serving.model_holder import ModelHolder, ServedModel, assemble


@dataclasses.dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


class PageParser(HTMLParser):
    """Every element with its attributes and own text, the datalists' options by list id, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self.options: dict[str, list[str]] = {}
        self._open: list[Element] = []
        self._datalist: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {key: value or "" for key, value in attrs})
        self.elements.append(element)
        if tag == "datalist":
            self._datalist = element.attrs["id"]
            self.options[self._datalist] = []
        elif tag == "option" and self._datalist is not None and "value" in element.attrs:
            self.options[self._datalist].append(element.attrs["value"])
        if tag not in ("input", "link", "meta", "br", "img"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag == "datalist":
            self._datalist = None
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._open:
            return
        element = self._open[-1]
        element.text += data
        # An option without a value attribute offers its text (the HTML rule browsers follow).
        if element.tag == "option" and "value" not in element.attrs and self._datalist is not None:
            self.options[self._datalist].append(data.strip())

    def by_id(self, element_id: str) -> Element:
        found = [e for e in self.elements if e.attrs.get("id") == element_id]
        assert len(found) == 1, f"one element #{element_id}, found {len(found)}"
        return found[0]

    def all(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e for e in self.elements if e.tag == tag and all(e.attrs.get(k) == v for k, v in attrs.items())
        ]


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture
def holder(api_app: FastAPI, client: TestClient) -> Iterator[ModelHolder]:
    """The app's model holder; whatever a test serves through it is put back afterwards."""
    models: ModelHolder = api_app.state.models
    served = models.served
    try:
        yield models
    finally:
        models.served = served


def served_model(holder: ModelHolder) -> ServedModel:
    assert holder.served is not None, "the session's champion is loaded"
    return holder.served


@pytest.mark.contract("GET", "/")
def test_seller_page_is_a_form_with_the_configured_limits_and_the_model_categories_and_brands(
    client: TestClient, holder: ModelHolder
) -> None:
    served = served_model(holder)
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = parse(response.text)
    assert [e.text for e in page.all("title")] == ["pricewise: price your listing"]
    assert page.by_id("listing-form").tag == "form"
    assert page.by_id("name").attrs["maxlength"] == "200"  # serve.max_name_chars
    assert page.by_id("item_description").attrs["maxlength"] == "5000"  # serve.max_description_chars
    assert page.all("select") == [], "the category is a searchable field, not a list of hundreds"

    category = page.by_id("category_name")
    assert category.tag == "input"
    assert (category.attrs["name"], category.attrs["list"]) == ("category_name", "categories")
    offered = page.options["categories"]
    assert offered == list(served.categories), "every category the model's reference has, in its order"
    assert "Men/Shoes/Athletic" in offered
    assert page.by_id("category-warning").attrs.get("hidden") == ""

    brand = page.by_id("brand_name")
    assert brand.tag == "input"
    assert (brand.attrs["name"], brand.attrs["list"]) == ("brand_name", "brands")
    assert served.brands, "the trained champion carries its brand vocabulary"
    assert page.options["brands"] == list(served.brands)
    assert "Nike" in page.options["brands"]

    radios = page.all("input", type="radio", name="item_condition_id")
    assert [r.attrs["value"] for r in radios] == ["1", "2", "3", "4", "5"], "New first, Poor last"
    assert [r.attrs["value"] for r in radios if "checked" in r.attrs] == ["3"]
    words = [e.text.strip() for e in page.elements if e.attrs.get("class") == "condition-word"]
    assert words == ["New", "Like new", "Good", "Fair", "Poor"]
    assert page.by_id("suggest").text.strip() == "Suggest a price"

    assert not any(e.attrs.get("id") in ("no-model", "fallback") for e in page.elements)
    assert page.all("link", rel="stylesheet", href="http://testserver/static/seller.css")
    assert page.all("link", rel="icon", href="http://testserver/static/favicon.svg", type="image/svg+xml")
    assert page.all("a", href="http://testserver/monitoring")


@pytest.mark.contract("GET", "/")
def test_the_result_starts_hidden_with_honest_headings_and_no_claim_about_similar_items(
    client: TestClient,
) -> None:
    html = client.get("/").text
    page = parse(html)
    for hidden in ("result", "low-confidence", "error", "accepted", "reasons-up-block", "reasons-down-block"):
        assert "hidden" in page.by_id(hidden).attrs, f"#{hidden} shows only once there is something to say"
    headings = [e.text.strip() for e in page.all("h3")]
    assert headings == ["Why this price", "Similar listings that sold"]
    assert [e.text.strip() for e in page.all("h4")] == ["Raises the price", "Lowers the price"]
    assert page.by_id("range").text.startswith("Price range:")
    assert "Most similar items sold between" not in html, "the range is the model's interval, not comparables"


@pytest.mark.contract("GET", "/")
def test_a_model_logged_before_its_reference_offers_no_lists_and_the_page_still_works(
    client: TestClient, holder: ModelHolder
) -> None:
    served = served_model(holder)
    bare = PriceSuggester(served.suggester.model, served.suggester.ranges, served.suggester.kind)
    holder.served = assemble(bare, served.name, served.version, served.run_id, served.source)
    assert (holder.served.categories, holder.served.brands) == ((), ())

    page = parse(client.get("/").text)
    assert page.options == {"brands": [], "categories": []}
    assert page.by_id("category_name").attrs["list"] == "categories"
    assert page.by_id("listing-form").tag == "form"


@pytest.mark.contract("GET", "/")
def test_without_a_model_the_page_says_so_and_offers_no_lists(
    client: TestClient, holder: ModelHolder
) -> None:
    holder.served = None
    response = client.get("/")
    assert response.status_code == 200
    page = parse(response.text)
    assert "suggestions are unavailable" in page.by_id("no-model").text
    assert page.options == {"brands": [], "categories": []}


@pytest.mark.contract("GET", "/static")
def test_the_favicon_is_an_svg_both_pages_link(client: TestClient) -> None:
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert ET.fromstring(icon.content).tag == "{http://www.w3.org/2000/svg}svg"
    for path in ("/", "/monitoring"):
        page = parse(client.get(path).text)
        icons = page.all("link", rel="icon")
        assert [(i.attrs["href"], i.attrs["type"]) for i in icons] == [
            ("http://testserver/static/favicon.svg", "image/svg+xml")
        ], path
