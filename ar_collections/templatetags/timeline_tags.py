"""The timeline's rows, written in Python (see ar_collections.timeline.rows_html)."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from ar_collections import timeline

register = template.Library()


@register.simple_tag(takes_context=True)
def timeline_rows(context, rows) -> SafeString:
    return timeline.rows_html(rows, action_base=context["action_base"], letter_base=context["letter_base"],
                              can_act=bool(context.get("can_act")))


@register.simple_tag
def timeline_filter_chips(selected) -> SafeString:
    return timeline.filter_chips_html(selected)
