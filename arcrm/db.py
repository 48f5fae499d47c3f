"""Small database functions the ORM lacks, written for PostgreSQL and SQLite."""

from __future__ import annotations

from django.db import models


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
