"""A scratch PostgreSQL database for a benchmark, and Django set up on it."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

# The customers' columns the benches write, in the order of the rows they COPY.
COPY_CUSTOMERS = (
    "COPY customers_customer (id, account_number, name, legal_name, industry, "
    "business_description, buying_reasons, customer_since, collector_id, special_bond, "
    "currency, credit_limit_amount, terms_type, payment_terms_days, on_credit_hold, "
    "ap_run_days, ordering_rhythm, notes, segment, segment_reason, segment_override, "
    "segment_override_note, created_at, updated_at) FROM STDIN"
)


def django_on_scratch_database(url: str, *, recreate: bool) -> None:
    """Point Django at `url` (dropped and created anew when `recreate`) and set it up."""
    if recreate:
        import psycopg

        parts = urlsplit(url)
        name = parts.path.lstrip("/")
        admin = parts._replace(path="/postgres").geturl()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arcrm.settings")

    import django

    django.setup()
