"""What the views ask of an htmx request."""

from __future__ import annotations

from django.forms.widgets import ChoiceWidget
from django.http import HttpRequest


def wants_fragment(request: HttpRequest) -> bool:
    """An htmx request for a part of the page. htmx asks for the whole page
    when it restores history it has not cached, so that gets the page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


class _FirstOptionAutofocus:
    """A group of boxes (radio buttons, checkboxes) that gives its autofocus to
    its first box only: Django copies a widget's attributes onto every box, and
    a page names one element to focus, not one per box."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex=subindex, attrs=attrs)
        if index or subindex:
            option["attrs"].pop("autofocus", None)
        return option


def form_autofocus(form, *, first: bool, start: str = "") -> None:
    """Put the keyboard in the form: on the first field to correct, else (with
    `first`) on its first field, or on `start` when the link that opened the
    form filled those before it (a payment chosen on its row). The browser honours autofocus on a page, htmx
    in a swapped panel; without it the focus stays behind or falls to the top.
    A group of boxes takes it on its first box. A hidden field never takes it
    (the focus would go nowhere): when only hidden fields are in error, the
    first field one can see takes it, so the keyboard is still in the form."""
    visible = [name for name, field in form.fields.items() if not field.widget.is_hidden]
    in_error = [name for name in visible if name in form.errors]
    hidden_in_error = any(name in form.errors for name in form.fields if name not in visible)
    names = in_error or ([start] if start and first else visible[:1] if first or hidden_in_error else [])
    if not names:
        return
    widget = form.fields[names[0]].widget
    # The form's fields are its own copies: changing this widget's class changes no other form.
    if isinstance(widget, ChoiceWidget) and widget.option_inherits_attrs:
        widget.__class__ = type(type(widget).__name__, (_FirstOptionAutofocus, type(widget)), {})
    widget.attrs["autofocus"] = True
