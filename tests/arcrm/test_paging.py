"""arcrm.paging: pages by position over a list whose rows leave in place."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import F, Value
from django.db.models.functions import Concat

from arcrm.paging import BadPosition, Keyset
from customers.models import Customer

# Newest customer first, then by credit limit, then by name (a join-free text), then by id.
ORDER = Keyset("-customer_since", "credit_limit_amount", "name", "pk")


@pytest.fixture
def customers(make_customer) -> list[int]:
    """30 customers in ORDER, with ties on every field but the id."""
    made = [
        make_customer(name=f"Kunde {'äöü'[n % 3]}", customer_since=dt.date(2020, 1, 1 + n % 4),
                      credit_limit_amount=Decimal(f"{n % 2}000.50"))
        for n in range(30)
    ]
    return [c.pk for c in sorted(made, key=lambda c: (-c.customer_since.toordinal(), c.credit_limit_amount,
                                                      c.name, c.pk))]


def pks(page) -> list[int]:
    return [row.pk for row in page.items]


def test_pages_follow_one_another_by_position_through_ties(customers):
    rows = Customer.objects.all()
    first = ORDER.page(rows, size=12)
    second = ORDER.page(rows, after=first.next_cursor, size=12)
    third = ORDER.page(rows, after=second.next_cursor, size=12)

    assert pks(first) + pks(second) + pks(third) == customers
    assert first.previous_cursor is None and third.next_cursor is None
    assert pks(ORDER.page(rows, before=third.previous_cursor, size=12)) == customers[12:24]


def test_rows_gone_from_a_page_do_not_move_the_next_one(customers):
    rows = Customer.objects.all()
    first = ORDER.page(rows, size=12)
    Customer.objects.filter(pk__in=[*customers[:5], customers[11]]).delete()

    assert pks(ORDER.page(rows, after=first.next_cursor, size=12)) == customers[12:24]


def test_going_back_with_fewer_than_a_page_before_shows_the_first_page(customers):
    rows = Customer.objects.all()
    second = ORDER.page(rows, after=ORDER.page(rows, size=12).next_cursor, size=12)
    Customer.objects.filter(pk__in=customers[:3]).delete()

    back = ORDER.page(rows, before=second.previous_cursor, size=12)

    assert pks(back) == customers[3:15]
    assert back.previous_cursor is None


def test_a_position_reads_back_as_the_fields_types_annotations_included(make_customer):
    customer = make_customer(name="Ölwerk & Söhne", customer_since=dt.date(2019, 5, 6),
                             credit_limit_amount=Decimal("1234.50"))
    rows = Customer.objects.annotate(label=Concat(F("name"), Value("!")))
    keyset = Keyset("label", "customer_since", "credit_limit_amount", "pk")

    cursor = keyset.cursor_for(rows.get())

    assert keyset.cursor_parse(rows, cursor) == ["Ölwerk & Söhne!", dt.date(2019, 5, 6), Decimal("1234.50"),
                                                 customer.pk]
    assert cursor.isascii() and "=" not in cursor


@pytest.mark.parametrize("cursor", [
    "nonsense!", "1.20250805.4", "WzFd",  # not base64; [1]: too few values
    "WyJ4IiwiMjAyNS0xMy0wMSIsIjEiLDFd",  # ["x","2025-13-01","1",1]: no such day
    "WyJ4IiwiMjAyNS0wMS0wMSIsbnVsbCwxXQ",  # ["x","2025-01-01",null,1]: a null
    "eyJhIjoxfQ",  # {"a":1}: not a list
    "WyJ4IiwiMjAyNS0wMS0wMSIsIjEiLDFlNDAwXQ",  # ["x","2025-01-01","1",1e400]: an id past any number
])
def test_a_position_the_list_did_not_hand_out_is_refused(db, cursor):
    keyset = Keyset("name", "customer_since", "credit_limit_amount", "pk")

    with pytest.raises(BadPosition, match="is not a position in this list"):
        keyset.page(Customer.objects.all(), after=cursor, size=10)


def test_a_position_past_the_last_possible_id_finds_nothing_further(customers):
    cursor = "WyJ4IiwiMjAyNS0wMS0wMSIsIjEiLDEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMF0"  # an id of 10**26
    keyset = Keyset("name", "customer_since", "credit_limit_amount", "pk")

    assert keyset.page(Customer.objects.all(), after=cursor, size=10).items == []


def test_an_order_must_end_with_the_primary_key_to_be_unique():
    with pytest.raises(ValueError, match="ends with the primary key"):
        Keyset("name", "customer_since")


def test_a_page_whose_previous_is_the_first_says_so_whichever_way_it_was_reached(customers):
    """Its Previous link then leads to the list's own address, with no position."""
    rows = Customer.objects.all()
    first = ORDER.page(rows, size=10)
    second = ORDER.page(rows, after=first.next_cursor, size=10)
    third = ORDER.page(rows, after=second.next_cursor, size=10)

    firsts = (first.previous_is_first, second.previous_is_first, third.previous_is_first)
    assert firsts == (False, True, False)
    back = ORDER.page(rows, before=third.previous_cursor, size=10)
    assert pks(back) == customers[10:20]
    assert back.previous_is_first


def test_a_page_further_back_is_not_taken_for_the_one_after_the_first(customers):
    rows = Customer.objects.all()
    page = ORDER.page(rows, size=6)
    for _ in range(4):
        page = ORDER.page(rows, after=page.next_cursor, size=6)
    assert pks(page) == customers[24:30]

    back = ORDER.page(rows, before=page.previous_cursor, size=6)
    assert (pks(back), back.previous_is_first) == (customers[18:24], False)
    back = ORDER.page(rows, before=back.previous_cursor, size=6)
    assert (pks(back), back.previous_is_first) == (customers[12:18], False)
    back = ORDER.page(rows, before=back.previous_cursor, size=6)
    assert (pks(back), back.previous_is_first) == (customers[6:12], True)


def test_rows_gone_from_before_a_page_make_its_previous_the_first(customers):
    rows = Customer.objects.all()
    second = ORDER.page(rows, after=ORDER.page(rows, size=10).next_cursor, size=10)
    Customer.objects.filter(pk__in=customers[:10]).delete()

    third = ORDER.page(rows, after=second.next_cursor, size=10)

    assert third.previous_is_first


def test_a_list_made_of_two_pages_as_one_list_would(customers):
    """The print queue's letters and paper documents: two lists merged in the
    order, here the customers split in two by id, paged as the whole would be."""
    rows = Customer.objects.all()
    split = [rows.filter(pk__in=customers[::3]), rows.exclude(pk__in=customers[::3])]
    whole = [ORDER.page(rows, size=7)]
    merged = [ORDER.page_merged(split, size=7)]
    while whole[-1].next_cursor:
        whole.append(ORDER.page(rows, after=whole[-1].next_cursor, size=7))
        merged.append(ORDER.page_merged(split, after=merged[-1].next_cursor, size=7))

    assert [pks(p) for p in merged] == [pks(p) for p in whole]
    assert [p.previous_is_first for p in merged] == [p.previous_is_first for p in whole]
    assert merged[-1].next_cursor is None
    back = ORDER.page_merged(split, before=merged[3].previous_cursor, size=7)
    assert pks(back) == pks(whole[2]) and back.previous_is_first == ORDER.page(
        rows, before=whole[3].previous_cursor, size=7).previous_is_first


def test_a_list_opens_at_the_row_after_the_one_that_left_on_the_first_page_that_holds_it(customers):
    rows = Customer.objects.all()
    rows_by_pk = {c.pk: c for c in rows}
    place = ORDER.cursor_for(rows_by_pk[customers[3]])
    Customer.objects.filter(pk=customers[3]).delete()

    assert ORDER.landing(rows, place, size=12) == (rows_by_pk[customers[4]], {})


def test_past_the_first_page_the_list_opens_at_the_page_beginning_after_the_row_that_left(customers):
    rows = Customer.objects.all()
    gone = {c.pk: c for c in rows}[customers[15]]
    place = ORDER.cursor_for(gone)
    gone.delete()

    row, position = ORDER.landing(rows, place, size=12)

    assert (row.pk, position) == (customers[16], {"after": place})
    assert pks(ORDER.page(rows, **position, size=12))[0] == customers[16]


def test_the_last_row_leaving_opens_the_list_at_the_one_before_and_none_when_nothing_is_left(customers):
    rows = Customer.objects.all()
    last = {c.pk: c for c in rows}[customers[-1]]
    place = ORDER.cursor_for(last)
    last.delete()

    row, position = ORDER.landing(rows, place, size=12)
    assert (row.pk, position) == (customers[-2], {"before": place})

    Customer.objects.all().delete()
    assert ORDER.landing(rows, place, size=12) is None
