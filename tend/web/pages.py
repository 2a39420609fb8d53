"""The few HTML pages Tend serves (a confirm link, an unsubscribe link): one template,
server-rendered, escaped, with no script, font or image from anywhere."""

from __future__ import annotations

from fastapi.responses import HTMLResponse
from jinja2 import Environment

from scheduler.acts.wording import Page

__all__ = ["page", "show"]

_PAGE = Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{ title }}</title>
</head><body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;\
max-width:32em;margin:3em auto;padding:0 1em;line-height:1.5;color:#222">
<h1 style="font-size:1.4em">{{ title }}</h1><p>{{ text }}</p>
{% if button %}<form method="post"><button type="submit" style="font-size:1em;padding:.6em 1.2em">\
{{ button }}</button></form>{% endif %}
</body></html>
"""
)


def page(title: str, text: str, *, status: int = 200, button: str | None = None) -> HTMLResponse:
    return HTMLResponse(_PAGE.render(title=title, text=text, button=button), status_code=status)


def show(content: Page, status: int = 200) -> HTMLResponse:
    """A page of :mod:`scheduler.acts.wording`'s."""
    return page(content.title, content.text, status=status, button=content.button)
