"""Logging helpers."""

from __future__ import annotations

import logging


class RefusalsWithoutTraceback(logging.Filter):
    """A refused request (403, 404, 400: the user's doing, answered with a
    page) is logged in one line, not with the traceback of the exception that
    refused it, which reads like a crash in a console. Server errors keep
    theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 500) < 500:
            record.exc_info, record.exc_text = None, None
        return True
