"""What our PDF layouts need beyond Django's tags, and the loader that gives
it to them alone: a label said in two places of a page, and a label in an
attribute.

`{% keep name %}{% block label %}…{% endblock %}{% endkeep %}` renders the
block (a manager's words, or the layout's) once, prints nothing, and keeps
the words under `name` for every place that says them: a block can be
written only once in a template, and a second block for the same label
would let the two places say different things. `{{ name|as_text }}` is
those words as plain text, for an attribute such as the running head or a
page's <title>, escaped once there like any value.

Only the PDF layouts (a template right in pdf/, as `is_layout` says) are
compiled with them, by `Loader`, first in the site's engine (settings'
TEMPLATES) and in a saved wording's (rendering.wording_engine): a page of
the site or a saved wording that writes `{% keep %}` or `|as_text` does not
parse, and a wording has no `load` to bring them in."""

import functools
import html
import posixpath

from django import template
from django.conf import settings
from django.template import Engine, TemplateDoesNotExist
from django.template.base import Node
from django.template.loaders.base import Loader as BaseLoader
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


# The layouts' own folder: their words, a language each, are in its subfolders.
LAYOUT_FOLDER = "pdf"


def is_layout(template_name: str) -> bool:
    """A PDF layout: an HTML template right in pdf/ (pdf/statement.html), not a language's words in it."""
    # Normalised first: "pdf/x/../statement.html" is not a layout's name as we write it.
    return (posixpath.normpath(template_name) == template_name and template_name.endswith(".html")
            and posixpath.dirname(template_name) == LAYOUT_FOLDER)


class Loader(BaseLoader):
    """The PDF layouts, compiled with this module's tag and filter besides
    Django's, for the engine that asks (the site's, or a saved wording's when
    the wording extends a layout); every other name is left to the engine's
    next loaders. A layout is found in the engine's own folders, so an
    install's own layout is read as Django would read it."""

    def get_template(self, template_name, skip=None):
        if not is_layout(template_name):
            raise TemplateDoesNotExist(template_name)
        layouts = _layouts(tuple(self.engine.dirs), self.engine.debug, self.engine.autoescape)
        template, _ = layouts.find_template(template_name, skip=skip)
        return template

    def reset(self) -> None:
        # Django's autoreloader resets the site's loaders when a template file changes.
        _layouts.cache_clear()


@functools.cache
def _layouts(dirs: tuple, debug: bool, autoescape: bool) -> Engine:
    """The engine the layouts are compiled by: Django's tags and filters and
    this module's. Read once a process, as the site's templates are; in DEBUG
    at every render, so that an edited layout shows at once."""
    loader = ("django.template.loaders.filesystem.Loader", list(dirs))
    cached = [("django.template.loaders.cached.Loader", [loader])]
    return Engine(dirs=list(dirs), debug=debug, autoescape=autoescape, libraries={},
                  loaders=[loader] if settings.DEBUG else cached, builtins=["ar_collections.layout_tags"])
