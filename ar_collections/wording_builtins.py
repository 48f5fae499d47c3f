"""The tags and filters a wording saved on the Wording page is compiled with
(rendering.wording_engine), in place of Django's whole set: the tags the
wording may use (wording.ALLOWED_TAGS) and those its frame and our layouts
need (autoescape, block, extends, include), and every filter but those that
let a value into the HTML unescaped. The PDF layouts' own `keep` and
`as_text` are not here: the layouts are compiled with them by
layout_tags.Loader, a wording never. `debug` (every value and the server's
modules), `load` (tag libraries that reach files, URLs or the database),
`url`, `now`, `csrf_token` and the rest do not exist there: a text that
reached the database without the page's checks still cannot use them."""

from django.template import Library, defaultfilters, defaulttags, loader_tags

TAGS = frozenset({"if", "for", "with", "firstof", "comment", "autoescape"})
LAYOUT_TAGS = frozenset({"block", "extends", "include"})
REFUSED_FILTERS = frozenset({"safe", "safeseq"})

register = Library()
register.tags = {name: tag for name, tag in defaulttags.register.tags.items() if name in TAGS}
register.tags |= {name: tag for name, tag in loader_tags.register.tags.items() if name in LAYOUT_TAGS}
register.filters = {name: function for name, function in defaultfilters.register.filters.items()
                    if name not in REFUSED_FILTERS}
