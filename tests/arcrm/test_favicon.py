"""/favicon.ico at the root, which browsers ask for on their own."""

from django.conf import settings


def test_the_root_favicon_leads_to_the_project_s_icon(client):
    """A PDF, a CSV or an error page opened in the browser links no icon, so the
    browser asks for /favicon.ico; it should find the icon, not a 404 in the logs.
    The redirect is temporary: the icon's address changes with its content."""
    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"] == settings.STATIC_URL + "favicon.ico"
