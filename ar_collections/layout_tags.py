"""What our PDF layouts need beyond Django's tags, in the main engine (settings'
TEMPLATES builtins) and in a saved wording's (wording_builtins), which has no
`load`: a label said in two places of a page, and a label in an attribute.

`{% keep name %}{% block label %}…{% endblock %}{% endkeep %}` renders the
block (a manager's words, or the layout's) once, prints nothing, and keeps
the words under `name` for every place that says them: a block can be
written only once in a template, and a second block for the same label
would let the two places say different things. `{{ name|as_text }}` is
those words as plain text, for an attribute such as the running head or a
page's <title>, escaped once there like any value.

Neither is offered to a wording (wording.ALLOWED_TAGS): they are the
layout's."""

import html

from django import template
from django.template.base import Node
from django.utils.html import strip_tags

register = template.Library()


class KeepNode(Node):
    # Seen through: the layout's blocks inside are found by a page that extends it.
    child_nodelists = ("nodelist",)

    def __init__(self, name: str, nodelist) -> None:
        self.name = name
        self.nodelist = nodelist

    def render(self, context) -> str:
        # The rendered words are markup already (escaped where they hold a value).
        context[self.name] = self.nodelist.render(context)
        return ""


@register.tag
def keep(parser, token):
    bits = token.split_contents()
    if len(bits) != 2:
        raise template.TemplateSyntaxError("{% keep %} takes the one name to keep its words under.")
    nodelist = parser.parse(("endkeep",))
    parser.delete_first_token()
    return KeepNode(bits[1], nodelist)


@register.filter(is_safe=False)
def as_text(value) -> str:
    """Markup as the reader sees it: no tags, entities read (escaped again where it is printed)."""
    return html.unescape(strip_tags(str(value)))
