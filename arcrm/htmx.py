"""What the views ask of an htmx request."""

from __future__ import annotations

from django.http import HttpRequest


def wants_fragment(request: HttpRequest) -> bool:
    """An htmx request for a part of the page. htmx asks for the whole page
    when it restores history it has not cached, so that gets the page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def form_autofocus(form, *, first: bool) -> None:
    """Put the keyboard in the form: on the first field to correct, else (with
    `first`) on its first field. The browser honours autofocus on a page, htmx
    in a swapped panel; without it the focus stays behind or falls to the top."""
    names = [name for name in form.fields if name in form.errors] or (list(form.fields)[:1] if first else [])
    if names:
        form.fields[names[0]].widget.attrs["autofocus"] = True
