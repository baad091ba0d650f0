"""The seller page: a listing form whose script asks the suggestion API and shows the price, its ranges, the
reasons and similar sold listings. (The monitoring page lives with the monitoring routes.)"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from pricewise.config import Config
from pricewise.serving.model_holder import ModelHolder
from pricewise.serving.routes import model_info

page = APIRouter(include_in_schema=False)


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
            "model": model_info(served) if served else None,
            "max_name": config.serve.max_name_chars,
            "max_description": config.serve.max_description_chars,
        },
    )
