"""What the views ask of an htmx request."""

from __future__ import annotations

from django.http import HttpRequest


def wants_fragment(request: HttpRequest) -> bool:
    """An htmx request for a part of the page. htmx asks for the whole page
    when it restores history it has not cached, so that gets the page."""
    return bool(request.htmx) and not request.htmx.history_restore_request
