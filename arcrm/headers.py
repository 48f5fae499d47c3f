"""The Content Security Policy every page is served with (settings
CONTENT_SECURITY_POLICY): a script that found its way into a page (a
customer's name from the ERP that escaping missed) does not run, and nothing
is loaded from or sent to another site.

Only HTML gets it: the policy is about what a page runs, and a PDF or a CSV
file opened in the browser is shown by the browser's own viewer."""

from __future__ import annotations

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html") and settings.CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response
