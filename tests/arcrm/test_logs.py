"""What the console shows of a refused request."""

import logging
import sys

import pytest
from django.urls import reverse

from arcrm.logs import RefusalsWithoutTraceback


def _record(status_code: int) -> logging.LogRecord:
    try:
        raise PermissionError("refused")
    except PermissionError:
        record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Forbidden: /x/", None,
                                   sys.exc_info())
    record.status_code = status_code
    return record


@pytest.mark.parametrize(("status", "traceback"), [(403, False), (404, False), (500, True)])
def test_a_refusal_is_one_line_and_a_server_error_keeps_its_traceback(status, traceback):
    record = _record(status)

    assert RefusalsWithoutTraceback().filter(record) is True
    assert (record.exc_info is not None) is traceback


def test_a_refused_page_says_why_in_the_site_s_own_layout(client, viewer):
    client.force_login(viewer)

    response = client.get(reverse("collections:worklist"))

    html = response.content.decode()
    assert response.status_code == 403
    assert "Not for your role" in html and 'class="site-nav"' in html
    assert "Nothing was changed" in html
