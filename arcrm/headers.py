"""The Content Security Policy every page is served with (settings
CONTENT_SECURITY_POLICY): a script that found its way into a page (a
customer's name from the ERP that escaping missed) does not run, and nothing
is loaded from or sent to another site.

Only HTML gets it: the policy is about what a page runs, and a PDF or a CSV
file opened in the browser is shown by the browser's own viewer."""

from __future__ import annotations

from django.conf import settings
from django.views.debug import ExceptionReporter

# Django's error page with DEBUG on (the traceback) folds and unfolds its
# frames with an inline script and onclick attributes: that page alone may run
# inline script, only with DEBUG on. With DEBUG off it is never shown.
DEBUG_ERROR_PAGE_POLICY_SCRIPT = "script-src 'self' 'unsafe-inline'"


class ErrorPageReporter(ExceptionReporter):
    """Django's reporter (settings DEFAULT_EXCEPTION_REPORTER), marking the
    request whose error page it writes, for the policy below."""

    def get_traceback_html(self):
        if self.request is not None:
            self.request.arcrm_debug_error_page = True
        return super().get_traceback_html()


def _policy(request) -> str:
    policy = settings.CONTENT_SECURITY_POLICY
    if settings.DEBUG and getattr(request, "arcrm_debug_error_page", False):
        return policy.replace("script-src 'self'", DEBUG_ERROR_PAGE_POLICY_SCRIPT)
    return policy


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html") and settings.CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy", _policy(request))
        return response
