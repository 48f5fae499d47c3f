"""Small database functions the ORM lacks, written for PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
import functools
import re

from django.db import models

from arcrm.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS
from arcrm.text import fold

# The type of an amount computed in a query (a sum, a difference), as the
# models keep money: without it, the database's own type for the result
# decides the places, and SQLite's is a float.
MONEY = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)


class DaysBetween(models.Func):
    """Whole days from `start` to `end` (end − start) for two DATE expressions.

    PostgreSQL subtracts dates to an integer directly; Django's own date
    subtraction would produce an interval, which cannot be averaged or
    multiplied by an amount as plainly.
    """

    arity = 2
    output_field = models.IntegerField()

    def __init__(self, end, start, **extra):
        super().__init__(end, start, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="(%(expressions)s)", arg_joiner=" - ", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="CAST(julianday(%(expressions)s) AS INTEGER)",
            arg_joiner=") - julianday(",
            **extra,
        )


class DaysAfter(models.Func):
    """The day `days` (an integer expression) after `day` (a DATE expression),
    as a date on both databases.

    PostgreSQL adds an integer to a date directly; SQLite would add it to the
    year of the date's text and give back a number, and Django's own date plus
    interval cannot take a number of days read from a column there.
    """

    arity = 2
    output_field = models.DateField()

    def __init__(self, day, days, **extra):
        super().__init__(day, days, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="(%(expressions)s)", arg_joiner=" + ", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="date(%(expressions)s || ' days')", **extra)


def rows_insert(model: type[models.Model], columns: dict[str, list]) -> None:
    """Insert rows given column by column (field or attribute name, such as
    "customer_id" -> values ready for the database), ignoring
    rows that would break a unique constraint, as
    `bulk_create(..., ignore_conflicts=True)` does, without its cost.

    On PostgreSQL: one `INSERT ... SELECT FROM unnest(arrays)` sending only
    the columns given, every other field its default as one constant. No model
    instance is made and no value prepared field by field, which for the
    planner's thousands of rows a batch was most of its Python time. Elsewhere
    (SQLite) it is bulk_create. Fields set on save (auto_now) are not supported:
    their value must be given.
    """
    from django.db import connection

    given = [model._meta.get_field(name) for name in columns]
    count = len(next(iter(columns.values()), []))
    if any(len(values) != count for values in columns.values()):
        raise ValueError("every column needs a value for every row")
    if not count:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(
            [model(**dict(zip(columns, row, strict=True))) for row in zip(*columns.values(), strict=True)],
            ignore_conflicts=True,
        )
        return
    # Left to the database: generated columns and those with a database default.
    others = [f for f in model._meta.concrete_fields if not f.primary_key and f not in given
              and not getattr(f, "generated", False) and f.db_default is models.NOT_PROVIDED]
    # One default for every row: a value worked out on save or per row
    # (a UUID, a timestamp) would be wrong for all but one.
    per_row = [f.name for f in others if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
               or (f.has_default() and callable(f.default) and f.default not in (dict, list, str))]
    if per_row:
        raise ValueError(f"set on save or per row, so to be given: {', '.join(per_row)}")
    quote = connection.ops.quote_name
    # Arrays of the base type (varchar, numeric), not the column's: a cast to
    # varchar(16) would cut a longer value short where the column refuses it.
    arrays = ", ".join(f"%s::{re.sub(r'[(].*[)]', '', f.db_type(connection))}[]" for f in given)
    aliases = ", ".join(f"c{n}" for n in range(len(given)))
    select = [f"u.c{n}" for n in range(len(given))] + ["%s"] * len(others)
    sql = (f"INSERT INTO {quote(model._meta.db_table)} "
           f"({', '.join(quote(f.column) for f in given + others)}) "
           f"SELECT {', '.join(select)} FROM unnest({arrays}) AS u({aliases}) ON CONFLICT DO NOTHING")
    defaults = [f.get_db_prep_save(f.get_default(), connection) for f in others]
    with connection.cursor() as cursor:
        # The constants come first in the statement's text, the arrays after.
        cursor.execute(sql, defaults + [list(values) for values in columns.values()])


class CompiledRead:
    """A read asked on every request, turned into SQL once a process (and
    database) and then run with each request's values.

    Django builds and compiles a queryset anew every time: resolving its
    filters, annotations and joins and writing the SQL cost more than running
    the short indexed reads the busiest pages make (the timeline's rows, the
    signed-in user, their session). `build(**placeholders)` returns the
    queryset once, with a placeholder for each value that changes from one
    request to the next; `rows(**values)` runs its SQL with the values in the
    placeholders' places, as the same queryset built with those values would,
    through the same cursor (counted, prepared by the connection alike).

    A placeholder must be a value of the parameter's type that appears nowhere
    else among the query's parameters (a negative id within the
    column's range: out of it Django compiles no query; a date in year 1), so
    that its places in the compiled parameters are its own; compiling checks
    that each is found. Only values the ORM passes on as they are (an exact
    match, a comparison), not those it rewrites (the pattern of startswith).
    """

    def __init__(self, build, **placeholders):
        self._build = build
        self._placeholders = placeholders
        self._compiled: dict[str, tuple] = {}

    def _compile(self, using: str) -> tuple:
        from django.db import connections

        connection = connections[using]
        compiler = self._build(**self._placeholders).query.get_compiler(using)
        sql, params = compiler.as_sql()
        slots = {}
        for name, placeholder in self._placeholders.items():
            placeholder = _adapted(placeholder, connection)
            slots[name] = [i for i, p in enumerate(params)
                           if type(p) is type(placeholder) and p == placeholder]
            if not slots[name]:
                raise ValueError(f"placeholder {name}={placeholder!r} is not among the compiled parameters")
        converters = compiler.get_converters([column for column, _, _ in compiler.select])
        compiled = (sql, list(params), slots, converters, connection.vendor)
        self._compiled[using] = compiled
        return compiled

    def rows(self, *, using: str = "default", **values) -> list[tuple]:
        from django.db import connections

        connection = connections[using]
        compiled = self._compiled.get(using)
        if compiled is None or compiled[4] != connection.vendor:
            compiled = self._compile(using)
        sql, params, slots, converters, _ = compiled
        params = params.copy()
        for name, places in slots.items():
            for place in places:
                params[place] = _adapted(values[name], connection)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not converters:  # PostgreSQL returns these columns as Python wants them
            return rows
        converted = []
        for row in rows:
            row = list(row)
            for place, (functions, expression) in converters.items():
                for function in functions:
                    row[place] = function(row[place], expression, connection)
            converted.append(tuple(row))
        return converted


def _adapted(value, connection):
    """A value as the ORM passes it to the database: a moment is written out
    where the database has no type for it (SQLite), as is elsewhere."""
    if isinstance(value, dt.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


class Folded(models.Func):
    """A column's text without accents ("López" as "Lopez"), for a search to
    compare with arcrm.text.fold(what was typed). On PostgreSQL the
    arcrm_fold function of customers 0014 (unaccent, immutable so that a
    trigram index can hold it); on SQLite the same Python as the typed text."""

    function = "arcrm_fold"
    output_field = models.TextField()


def sqlite_functions_register(*, connection, **_) -> None:
    """On SQLite (`make run`'s embedded database), LIKE in any capitals of any
    letter, as PostgreSQL compares for `icontains` and `iexact`: SQLite's own
    LIKE folds only A to Z, so a search for "élodie" found no Élodie there.
    And arcrm_fold, what Folded calls. Receiver of `connection_created`."""
    if connection.vendor != "sqlite":
        return
    # like(pattern, value[, escape]) is what SQLite calls for `value LIKE pattern [ESCAPE escape]`.
    connection.connection.create_function("like", 2, _like, deterministic=True)
    connection.connection.create_function("like", 3, _like, deterministic=True)
    connection.connection.create_function("arcrm_fold", 1, _fold, deterministic=True)


def _fold(value):
    return None if value is None else fold(str(value))


def _like(pattern: str | None, value, escape: str | None = None) -> bool | None:
    if pattern is None or value is None:
        return None
    return _like_pattern(str(pattern), escape).fullmatch(str(value)) is not None


@functools.lru_cache(maxsize=256)  # a page asks the same few patterns of many rows
def _like_pattern(pattern: str, escape: str | None) -> re.Pattern[str]:
    parts, escaped = [], False
    for char in pattern:
        if escaped or (char != escape and char not in "%_"):
            parts.append(re.escape(char))
            escaped = False
        elif char == escape:
            escaped = True
        else:
            parts.append(".*" if char == "%" else ".")
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def unreachable_database() -> str | None:
    """Why the default database cannot be connected to, in one line (the
    driver's words, its runs of spaces and lines as one space), or None when
    it can: a command that failed on a database error is told apart from one
    that cannot start for want of a database, by connecting again."""
    from django.db import OperationalError, connection

    connection.close()
    try:
        connection.ensure_connection()
    except OperationalError as error:
        return " ".join(str(error).removeprefix("connection failed:").split())
    finally:
        connection.close()
    return None
