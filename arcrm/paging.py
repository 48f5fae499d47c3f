"""Pages by position (keyset paging) for lists whose rows leave in place.

A list where people close rows where they stand (an item done, a step sent or
skipped, a decision taken) cannot be paged by offset: the rows still open move
up into the gap, so "page 2" counted from the top begins that many rows too
late and those rows are never shown to anyone. A page here starts right after
the last row shown, by the list's own order, so it holds even once that row
has left the list.

A position ("cursor") is opaque to the browser: the row's values of the
order's fields, as JSON in URL-safe base64. It is checked when read back, but
not signed: it only says where to start in a list the view has already
restricted to what the user may see.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from operator import or_
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Field, Q, QuerySet


class BadPosition(ValueError):
    """A page position ("after" or "before" a row) that this list did not hand out."""


@dataclass(frozen=True)
class Page:
    items: list
    previous_cursor: str | None  # None on the first page
    next_cursor: str | None  # None on the last
    # The page before this one is the first: its link carries no position, so
    # the first page has one address (the list's own), whichever way one got there.
    previous_is_first: bool = False


class Keyset:
    """An order for a list paged by position: field names as `order_by` takes
    them ("-priority", "customer__name", annotations too), none of them ever
    NULL, ending with "pk" so that every row has a place of its own."""

    def __init__(self, *order: str) -> None:
        if not order or order[-1].lstrip("-") != "pk":
            raise ValueError(f"A keyset order ends with the primary key, to be unique: {order!r}.")
        self.order = order
        self._names = [name.lstrip("-") for name in order]
        self._descending = [name.startswith("-") for name in order]

    def page(self, rows: QuerySet, *, after: str = "", before: str = "", size: int) -> Page:
        """The `size` rows after the position `after`, or before `before`, or
        from the top. One query: one more row than shown tells whether there
        is more (going back, one more page than shown tells whether the page
        before is the first); a page reached forwards asks a second, whether
        more than a page lies before it. Going back with fewer than a page
        left before shows the first page (what was before may have gone since)."""
        rows = rows.order_by(*self.order)
        if before:
            found = list(self._earlier(rows, before)[: 2 * size + 1])
            if len(found) > size:
                shown = found[:size][::-1]
                return Page(shown, self.cursor_for(shown[0]), self.cursor_for(shown[-1]),
                            previous_is_first=len(found) <= 2 * size)
            after = ""
        first = False
        if after:
            found = list(rows.filter(self._beyond(rows, after, forward=True))[: size + 1])
            shown = found[:size]
            # Everything before it may have gone since: going back then shows the first page.
            previous = self.cursor_for(shown[0]) if shown else after
            first = bool(shown) and not self._earlier(rows, previous)[size:size + 1].exists()
        else:
            found = list(rows[: size + 1])
            shown, previous = found[:size], None
        return Page(shown, previous, self.cursor_for(shown[-1]) if len(found) > size else None,
                    previous_is_first=first)

    def landing(self, rows: QuerySet, place: str, *, size: int) -> tuple[Any, dict[str, str]] | None:
        """Where a list opens once the row that stood at `place` has left it
        (a page loaded anew, without htmx, after the row was done): the row to
        go on with, the next one or, that one being the last, the one before;
        and the position of a page holding it: none when the first page does,
        else the page beginning right after `place` (or ending right before
        it). None when no row is left."""
        if later := self.page(rows, after=place, size=size).items:
            row, side = later[0], "after"
        elif earlier := self.page(rows, before=place, size=size).items:
            row, side = earlier[-1], "before"
        else:
            return None
        if row in self.page(rows, size=size).items:
            return row, {}
        return row, {side: place}

    def page_merged(self, lists: Sequence[QuerySet], *, after: str = "", before: str = "",
                    size: int) -> Page:
        """`page` of one list made of several (rows of different tables, as
        the print queue's letters and paper documents), merged by this order.
        Each list must give its rows every field of the order (an annotation
        telling the tables apart among them, so no two rows share a place).
        A query per list where `page` asks one."""
        lists = [rows.order_by(*self.order) for rows in lists]
        if before:
            found = self._merged([self._earlier(rows, before)[: 2 * size + 1] for rows in lists],
                                 backwards=True)[: 2 * size + 1]
            if len(found) > size:
                shown = found[:size][::-1]
                return Page(shown, self.cursor_for(shown[0]), self.cursor_for(shown[-1]),
                            previous_is_first=len(found) <= 2 * size)
            after = ""
        first = False
        if after:
            found = self._merged(
                [rows.filter(self._beyond(rows, after, forward=True))[: size + 1] for rows in lists]
            )[: size + 1]
            shown = found[:size]
            previous = self.cursor_for(shown[0]) if shown else after
            first = bool(shown) and sum(
                self._earlier(rows, previous)[:size + 1].count() for rows in lists
            ) <= size
        else:
            found = self._merged([rows[: size + 1] for rows in lists])[: size + 1]
            shown, previous = found[:size], None
        return Page(shown, previous, self.cursor_for(shown[-1]) if len(found) > size else None,
                    previous_is_first=first)

    def _merged(self, parts: Iterable[QuerySet], *, backwards: bool = False) -> list:
        """The rows of `parts`, each already in order, in this order (or its
        reverse): sorted by the last field first, each sort stable."""
        rows = [row for part in parts for row in part]
        for name, descending in reversed(list(zip(self._names, self._descending, strict=True))):
            rows.sort(key=lambda row, name=name: _value(row, name), reverse=descending != backwards)
        return rows

    def _earlier(self, rows: QuerySet, cursor: str) -> QuerySet:
        """The rows before the position, the nearest first."""
        backwards = [name[1:] if name.startswith("-") else f"-{name}" for name in self.order]
        return rows.filter(self._beyond(rows, cursor, forward=False)).order_by(*backwards)

    def cursor_for(self, row: Any) -> str:
        """The row's place in the order, as a position to hand out."""
        values = [_value(row, name) for name in self._names]
        text = json.dumps(values, default=_plain, separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    def cursor_parse(self, rows: QuerySet, cursor: str) -> list:
        """The values a position stands for, each as its field's Python type."""
        fields = [_field(rows, name) for name in self._names]
        try:
            text = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
            values = json.loads(text)
            if not isinstance(values, list) or len(values) != len(self._names) or None in values:
                raise ValueError
            return [field.to_python(value) for field, value in zip(fields, values, strict=True)]
        except (ValueError, TypeError, OverflowError, ValidationError, binascii.Error):
            raise BadPosition(f"{cursor!r} is not a position in this list.") from None

    def _beyond(self, rows: QuerySet, cursor: str, *, forward: bool) -> Q:
        """Rows that come after (or before) the position: for order (a, b, pk)
        ascending, a > x, or a = x and b > y, or a = x and b = y and pk > z."""
        values = self.cursor_parse(rows, cursor)
        terms = []
        for i, (name, value) in enumerate(zip(self._names, values, strict=True)):
            later = "gt" if forward != self._descending[i] else "lt"
            same = dict(zip(self._names[:i], values[:i], strict=True))
            terms.append(Q(**same, **{f"{name}__{later}": value}))
        return reduce(or_, terms)


def _value(row: Any, name: str) -> Any:
    for part in name.split("__"):
        row = getattr(row, part)
    if row is None:
        raise ValueError(f"{name} is None: a keyset order's fields must never be NULL.")
    return row


def _plain(value: Any) -> str:
    """What JSON has no type for, as its field reads it back."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):  # a datetime too
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot be part of a page position.")


def _field(rows: QuerySet, name: str) -> Field:
    """The field (or annotation's output field) `name` names, to read its value back."""
    if name in rows.query.annotations:
        return rows.query.annotations[name].output_field
    model = rows.model
    *path, last = name.split("__")
    for part in path:
        model = model._meta.get_field(part).related_model
    return model._meta.pk if last == "pk" else model._meta.get_field(last)
