"""The seller page: a listing form whose script asks the suggestion API and shows the price, its ranges, the
reasons and similar sold listings. (The monitoring page lives with the monitoring routes.)"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from pricewise.config import Config
from pricewise.serving.model_holder import ModelHolder
from pricewise.serving.routes import model_info
from pricewise.serving.schemas import HARD_MAX_BRAND_CHARS, HARD_MAX_CATEGORY_CHARS

page = APIRouter(include_in_schema=False)

# The condition codes of the listing schema and the words the page shows for them, best first. The script reads
# the words back from the form to name the condition of comparables the API sends without one.
CONDITIONS = ((1, "New"), (2, "Like new"), (3, "Good"), (4, "Fair"), (5, "Poor"))
DEFAULT_CONDITION = 3


@page.get("/", response_class=HTMLResponse)
def seller_page(request: Request) -> HTMLResponse:
    """The seller page: a listing form that shows the suggestion, its range, reasons and comparables."""
    templates: Jinja2Templates = request.app.state.templates
    holder: ModelHolder = request.app.state.models
    config: Config = request.app.state.config
    served = holder.served
    return templates.TemplateResponse(
        request,
        "seller.html",
        {
            "categories": served.categories if served else (),
            "brands": served.brands if served else (),
            "conditions": CONDITIONS,
            "default_condition": DEFAULT_CONDITION,
            "model": model_info(served) if served else None,
            "max_name": config.serve.max_name_chars,
            "max_description": config.serve.max_description_chars,
            "max_brand": HARD_MAX_BRAND_CHARS,
            "max_category": HARD_MAX_CATEGORY_CHARS,
        },
    )
