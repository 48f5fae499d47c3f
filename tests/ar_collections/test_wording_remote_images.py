"""A manager's HTML wording may not load images from another site: the mail
client would tell that site when the customer opened the e-mail, and many
clients refuse them. Refused on save, with the reason, as a broken wording is."""

from __future__ import annotations

import re
from html import unescape

import pytest

from ar_collections import wording
from ar_collections.models import WordingVersion

from .test_wording import posted, url

REMOTE = [
    '<img src="http://tracker.example/open.gif?c={{ customer_name|urlencode }}">',
    "<img alt='logo' SRC='https://cdn.example/logo.png'>",
    '<img src="//cdn.example/logo.png">',
    '<p style="background: url(\'https://cdn.example/bg.png\')">Hi</p>',
    '<table background="http://cdn.example/bg.png"><tr><td>Hi</td></tr></table>',
]


@pytest.mark.parametrize("image", REMOTE)
def test_an_html_wording_loading_an_image_from_another_site_is_refused_and_nothing_is_saved(
        client, manager, image):
    client.force_login(manager)
    html = "{% block intro %}<p>Hello {{ recipient_name }}.</p>\n" + image + "{% endblock %}"

    response = client.post(url("wording_edit"), posted(html=html))

    assert response.status_code == 422
    said = unescape(response.text)
    assert "HTML e-mail and letter: line 2: it loads an image from another site (" in said
    assert "leave the image out" in said
    assert not WordingVersion.objects.exists()


# Written so the template's source does not show the address plainly; read
# with entities decoded and comments left out, or as written out (tags done,
# CSS escapes read), it does.
HIDDEN = [
    '<img src="&#x2F;&#x2F;t.example/p.png">',
    '<img src="h{# #}ttps://t.example/p.png">',
    '<img src="{% if 1 %}https://t.example/p.png{% endif %}">',
    '<img src="/static/a.png" srcset="/static/a.png 1x, https://t.example/p.png 2x">',
    '<style>@import "https://t.example/s.css";</style>',
    '<p style="background: url(\\2f\\2f t.example/p.png)">Hi</p>',
    '<link rel="stylesheet" href="https://t.example/s.css">',
    '<img src="https:&#x2F;&#x2F;t.example/p.png">',
]


@pytest.mark.parametrize("image", HIDDEN)
def test_an_address_of_another_site_hidden_in_the_source_is_refused(client, manager, image):
    client.force_login(manager)
    html = "{% block intro %}<p>Hello {{ recipient_name }}.</p>\n" + image + "{% endblock %}"

    response = client.post(url("wording_edit"), posted(html=html))

    assert response.status_code == 422
    said = unescape(response.text)
    assert re.search(r"HTML e-mail and letter: (line 2:|as written out,) it loads .* from another site "
                     r"\([^)]*t\.example", said)
    assert not WordingVersion.objects.exists()


@pytest.mark.parametrize("image", ['<img src="&#x2F;&#x2F;t.example/p.png">', '<img src="h{# #}ttps://t.example/p.png">'])
def test_an_address_spelled_out_in_a_branch_the_sample_does_not_take_is_refused_too(client, manager, image):
    client.force_login(manager)
    html = ("{% block intro %}<p>Hello {{ recipient_name }}.</p>\n{% if not recipient_name %}" + image
            + "{% endif %}{% endblock %}")

    response = client.post(url("wording_edit"), posted(html=html))

    assert response.status_code == 422
    assert "HTML e-mail and letter: line 2: it loads an image from another site (" in unescape(response.text)
    assert not WordingVersion.objects.exists()


def test_a_link_to_another_site_and_a_text_naming_an_address_are_kept(client, manager):
    client.force_login(manager)
    html = ('{% block intro %}<p>Pay online at <a href="https://pay.example/">pay.example</a>; '
            "our images live at https://cdn.example/.</p>{% endblock %}")

    response = client.post(url("wording_edit"), posted(html=html))

    assert response.status_code == 302
    assert wording.wording_in_force("dunning", 1, "en")["html"] == html
