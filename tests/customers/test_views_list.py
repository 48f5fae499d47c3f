"""The customer list: search, filters, sorting, paging, the htmx fragment."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from ar_collections.models import PaymentBehaviour
from customers.models import Segment, TermsType

URL = reverse("customers:list")


def with_behaviour(customer, *, open_amount="0", overdue_amount="0", max_days=0):
    PaymentBehaviour.objects.create(
        customer=customer,
        computed_on=dt.date(2025, 3, 1),
        open_amount=Decimal(open_amount),
        overdue_amount=Decimal(overdue_amount),
        max_days_overdue=max_days,
    )
    return customer


def names_in(response) -> list[str]:
    return [customer.name for customer in response.context["page"].object_list]


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_user_without_a_role_is_refused(client, db):
    client.force_login(User.objects.create_user("nobody"))

    assert client.get(URL).status_code == 403


def test_the_login_page_names_the_product_and_posts_the_credentials(client, db):
    html = client.get(reverse("login")).content.decode()

    assert "<h1 id=\"login-title\">arcrm</h1>" in html
    assert f'action="{reverse("login")}"' in html
    assert 'method="post"' in html


def test_a_wrong_password_is_refused_with_a_message(client, collector):
    response = client.post(reverse("login"), {"username": "carla", "password": "wrong"})

    assert response.status_code == 200
    assert "did not match" in response.content.decode()


def test_every_page_shows_who_is_signed_in_and_logs_out_by_post(client, collector):
    collector.first_name, collector.last_name = "Carla", "Cruz"
    collector.save()
    client.force_login(collector)

    html = client.get(URL).content.decode()

    assert '<span class="user-name">Carla Cruz</span>' in html
    assert '<span class="role-badge">Collector</span>' in html
    assert f'<form method="post" action="{reverse("logout")}">' in html
    assert client.post(reverse("logout")).url == reverse("login")
    assert client.get(URL).status_code == 302


def test_a_viewer_sees_every_account(client, viewer, make_customer, other_collector):
    make_customer(name="Mine Ltd")
    make_customer(name="Theirs Ltd", collector=other_collector)
    client.force_login(viewer)

    response = client.get(URL)

    assert response.status_code == 200
    assert names_in(response) == ["Mine Ltd", "Theirs Ltd"]


def test_it_shows_behaviour_figures_and_dashes_when_not_computed(client, collector, make_customer):
    with_behaviour(
        make_customer(name="Slow GmbH", currency="EUR", payment_terms_days=45),
        open_amount="1234.50", overdue_amount="800.00", max_days=37,
    )
    make_customer(name="Fresh BV", segment=Segment.NEW)
    client.force_login(collector)

    html = client.get(URL).content.decode()

    assert "EUR 1,234.50" in html
    assert "EUR 800.00" in html
    assert ">37<" in html
    assert "Net 45" in html
    assert 'title="Not computed yet">—' in html
    assert "segment-new" in html


def test_it_sorts_by_overdue_amount_then_name(client, collector, make_customer):
    make_customer(name="No behaviour")
    with_behaviour(make_customer(name="Bravo"), overdue_amount="10")
    with_behaviour(make_customer(name="Alpha"), overdue_amount="10")
    with_behaviour(make_customer(name="Big debt"), overdue_amount="5000")
    with_behaviour(make_customer(name="Clean"), overdue_amount="0")
    client.force_login(collector)

    assert names_in(client.get(URL)) == ["Big debt", "Alpha", "Bravo", "Clean", "No behaviour"]


def test_amounts_in_different_currencies_are_ranked_within_their_currency_not_against_each_other(
    client, collector, make_customer, settings
):
    """No exchange rates: JPY 900,000 is not more overdue than EUR 5,000. The
    house currency's accounts come first, then each other currency's, most
    overdue first within each, under a heading naming the currency."""
    settings.DEFAULT_CURRENCY = "EUR"
    with_behaviour(make_customer(name="Tokyo", currency="JPY"), overdue_amount="900000")
    with_behaviour(make_customer(name="Boston", currency="USD"), overdue_amount="200")
    with_behaviour(make_customer(name="Berlin", currency="EUR"), overdue_amount="5000")
    with_behaviour(make_customer(name="Bristol", currency="GBP"), overdue_amount="7000")
    with_behaviour(make_customer(name="Dallas", currency="USD"), overdue_amount="9000")
    with_behaviour(make_customer(name="Paris", currency="EUR"), overdue_amount="10")
    client.force_login(collector)

    response = client.get(URL)

    assert names_in(response) == ["Berlin", "Paris", "Bristol", "Tokyo", "Dallas", "Boston"]
    html = " ".join(response.content.decode().split())
    headings = re.findall(r'<th scope="colgroup" colspan="7">Accounts in (\w+)</th>', html)
    assert headings == ["EUR", "GBP", "JPY", "USD"]
    assert "by account currency (EUR first), most overdue first within each" in html


def test_a_page_all_in_the_house_currency_says_other_currencies_follow(
    client, collector, make_customer, settings
):
    """The first pages can hold only the house currency's accounts: they say
    so, and which currencies come after, or the list would read as the most
    overdue of all when a GBP account far behind waits on a later page."""
    settings.DEFAULT_CURRENCY = "EUR"
    for n in range(50):
        with_behaviour(make_customer(name=f"Berlin {n:02d}", currency="EUR"), overdue_amount="10")
    with_behaviour(make_customer(name="Bristol", currency="GBP"), overdue_amount="90000")
    with_behaviour(make_customer(name="Boston", currency="USD"), overdue_amount="50000")
    client.force_login(collector)

    html = " ".join(client.get(URL).content.decode().split())

    assert re.findall(r'<th scope="colgroup" colspan="7">Accounts in (\w+)</th>', html) == ["EUR"]
    assert "Most overdue first within each currency: EUR, then GBP, then USD." in html


def test_a_list_in_one_currency_has_no_currency_headings(client, collector, make_customer):
    with_behaviour(make_customer(name="Berlin"), overdue_amount="5000")

    client.force_login(collector)

    assert 'scope="colgroup"' not in client.get(URL).content.decode()


def test_an_account_shows_its_open_invoices_in_other_currencies_in_their_own_beside_its_figures(
    client, collector, make_customer, make_invoice, django_assert_num_queries
):
    customer = with_behaviour(make_customer(name="Berlin", currency="EUR"), open_amount="100")
    PaymentBehaviour.objects.filter(customer=customer).update(other_currency_open_invoices=2)
    for due, amount in [(dt.date(2020, 2, 1), "30.00"), (dt.date(2099, 1, 1), "20.00")]:
        make_invoice(customer, issued=dt.date(2020, 1, 1), due=due, amount=amount, currency="USD")
    client.force_login(collector)

    # One query more than a page without such an account: their amounts per currency.
    with django_assert_num_queries(10):
        html = " ".join(client.get(URL).content.decode().split())

    assert '<td class="num">EUR 100.00 + USD 50.00</td>' in html, html
    # Nothing overdue in euros: the dollars overdue alone, not behind "EUR 0.00".
    assert '<td class="num overdue">USD 30.00</td>' in html, html


@pytest.mark.parametrize("query", [
    "acme", "C-ACME-1", "ap@acme.example",
    # Part of an account number or an address, in any case.
    "acme-1", "boss@acme", "ACME.EXAMPLE",
])
def test_search_finds_a_customer_by_name_account_number_or_contact_email(
    client, collector, make_customer, make_contact, query
):
    acme = make_customer(name="Acme Tools", account_number="C-ACME-1")
    make_contact(acme, email="ap@acme.example")
    make_contact(acme, email="boss@acme.example")
    make_customer(name="Globex")
    client.force_login(collector)

    assert names_in(client.get(URL, {"q": query})) == ["Acme Tools"]


def test_the_segment_filter_keeps_only_that_segment(client, collector, make_customer):
    make_customer(name="Late one", segment=Segment.SYSTEMATIC_LATE)
    make_customer(name="Prompt one", segment=Segment.PROMPT)
    client.force_login(collector)

    response = client.get(URL, {"segment": Segment.SYSTEMATIC_LATE})

    assert names_in(response) == ["Late one"]


def test_the_mine_filter_keeps_the_collectors_own_accounts(
    client, collector, other_collector, make_customer
):
    make_customer(name="Carla's")
    make_customer(name="Otto's", collector=other_collector)
    client.force_login(collector)

    assert names_in(client.get(URL, {"collector": "mine"})) == ["Carla's"]


def test_the_collector_filter_keeps_a_chosen_collectors_accounts(
    client, manager, collector, other_collector, make_customer
):
    make_customer(name="Carla's")
    make_customer(name="Otto's", collector=other_collector)
    client.force_login(manager)

    assert names_in(client.get(URL, {"collector": other_collector.pk})) == ["Otto's"]


def test_the_overdue_filter_keeps_customers_owing_overdue_money(client, collector, make_customer):
    with_behaviour(make_customer(name="Owes"), open_amount="100", overdue_amount="100")
    with_behaviour(make_customer(name="Current"), open_amount="100", overdue_amount="0")
    make_customer(name="Not computed")
    client.force_login(collector)

    assert names_in(client.get(URL, {"overdue": "on"})) == ["Owes"]


def test_the_terms_filter_finds_the_accounts_on_credit_hold_or_on_cod(client, manager, make_customer):
    """A manager deciding which holds and C.O.D. to lift finds them in one list, not page by page."""
    make_customer(name="Held", on_credit_hold=True)
    make_customer(name="Cash first", terms_type=TermsType.COD)
    make_customer(name="Pays ahead", terms_type=TermsType.PREPAYMENT)
    make_customer(name="Ordinary")
    client.force_login(manager)

    assert names_in(client.get(URL, {"terms": "credit_hold"})) == ["Held"]
    assert names_in(client.get(URL, {"terms": TermsType.COD})) == ["Cash first"]
    assert names_in(client.get(URL, {"terms": TermsType.PREPAYMENT})) == ["Pays ahead"]
    html = client.get(URL, {"terms": "credit_hold"}).content.decode()
    assert '<option value="credit_hold" selected>On credit hold</option>' in html
    assert names_in(client.get(URL, {"terms": "bogus"})) == ["Cash first", "Held", "Ordinary", "Pays ahead"]


def test_filters_combine_with_the_search(client, collector, other_collector, make_customer):
    with_behaviour(make_customer(name="Acme North", segment=Segment.PROMPT), overdue_amount="5")
    with_behaviour(make_customer(name="Acme South", segment=Segment.PROMPT), overdue_amount="0")
    with_behaviour(
        make_customer(name="Acme East", segment=Segment.PROMPT, collector=other_collector),
        overdue_amount="5",
    )
    client.force_login(collector)

    response = client.get(
        URL, {"q": "acme", "segment": "prompt", "collector": "mine", "overdue": "on"}
    )

    assert names_in(response) == ["Acme North"]


def test_an_unknown_filter_value_is_ignored_rather_than_failing(client, collector, make_customer):
    make_customer(name="Acme")
    client.force_login(collector)

    response = client.get(URL, {"segment": "bogus", "collector": "999999"})

    assert response.status_code == 200
    assert names_in(response) == ["Acme"]


def test_the_filter_form_keeps_the_chosen_values(client, collector, make_customer):
    client.force_login(collector)

    html = client.get(URL, {"q": "acme", "segment": "prompt", "overdue": "on"}).content.decode()

    assert 'value="acme"' in html
    assert '<option value="prompt" selected>' in html
    assert 'name="overdue" id="id_overdue" checked' in html


def test_the_filter_form_works_with_and_without_htmx(client, collector):
    client.force_login(collector)

    html = client.get(URL).content.decode()

    assert f'action="{URL}"' in html
    assert 'method="get"' in html
    assert f'hx-get="{URL}"' in html
    assert 'hx-target="#results"' in html
    assert 'hx-push-url="true"' in html


def test_an_htmx_request_gets_only_the_results(client, collector, make_customer):
    make_customer(name="Acme")
    client.force_login(collector)

    response = client.get(URL, {"q": "acme"}, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="results"')
    assert "<html" not in html
    assert "Acme" in html
    assert "HX-Request" in response["Vary"]


def test_a_history_restore_request_gets_the_whole_page(client, collector):
    client.force_login(collector)

    response = client.get(
        URL, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )

    assert "<html" in response.content.decode()


def test_the_list_is_paged_fifty_at_a_time(client, collector, make_customer):
    for n in range(51):
        make_customer(name=f"Customer {n:02d}")
    client.force_login(collector)

    first = client.get(URL)
    second = client.get(URL, {"page": 2})

    assert len(names_in(first)) == 50
    assert names_in(second) == ["Customer 50"]
    assert "page 2 of 2" in second.content.decode()


@pytest.mark.parametrize(("asked", "shown"), [("99", 2), ("0", 2), ("two", 1)])
def test_a_page_number_out_of_range_shows_the_last_page_and_one_not_a_number_the_first(
    client, collector, make_customer, asked, shown
):
    for n in range(51):
        make_customer(name=f"Customer {n:02d}")
    client.force_login(collector)

    response = client.get(URL, {"page": asked})

    assert response.status_code == 200
    assert response.context["page"].number == shown
    assert f"page {shown} of 2" in response.content.decode()


def test_page_links_keep_the_filters(client, collector, make_customer):
    for n in range(51):
        make_customer(name=f"Acme {n:02d}")
    client.force_login(collector)

    html = client.get(URL, {"q": "acme"}).content.decode()

    assert 'href="?q=acme&amp;page=2"' in html
    assert 'hx-get="?q=acme&amp;page=2"' in html


@pytest.mark.parametrize("customers", [3, 30])
def test_the_number_of_queries_does_not_grow_with_the_customers(
    client, collector, other_collector, make_customer, make_contact,
    django_assert_num_queries, customers,
):
    for n in range(customers):
        customer = make_customer(collector=collector if n % 2 else other_collector)
        make_contact(customer)
        if n % 3:
            with_behaviour(customer, overdue_amount=str(n))
    client.force_login(collector)

    # session, user, role groups, permissions (2), collector choices, the search's
    # three sides read up to the cap (accounts, contacts, invoice), the matches
    # ranked by id (their count and currencies with them), the page's accounts
    with django_assert_num_queries(11):
        response = client.get(URL, {"q": "customer"})

    assert len(names_in(response)) == customers


@pytest.mark.parametrize(("query", "first_page"), [({}, "."), ({"q": "acme"}, "?q=acme")],
                         ids=["unfiltered", "filtered"])
def test_previous_from_the_second_page_leads_to_the_first_page_s_own_address(
    client, collector, make_customer, query, first_page
):
    """No "page=1": the first page has one address, the one htmx pushes too."""
    for n in range(101):
        make_customer(name=f"Acme {n:03d}")
    client.force_login(collector)

    second = client.get(URL, {**query, "page": 2}).content.decode()
    third = client.get(URL, {**query, "page": 3}).content.decode()

    assert re.search(r'<a href="([^"]*)" rel="prev" hx-get="([^"]*)"', second).groups() == (first_page,) * 2
    assert re.search(r'<a href="([^"]*)" rel="prev"', third).group(1) == first_page.replace(
        ".", "?") + ("&amp;" if query else "") + "page=2"


@pytest.mark.parametrize("query", [
    "Ruben Bakker", "ruben  bakker",  # a contact's name, a double space typed
    "Hendriks Data B.V.", "  hendriks   data b.v. ",  # the legal name
    "INV-2026-001774", " inv-2026-001774 ",  # the exact invoice number, any case
])
def test_search_finds_an_account_by_contact_name_legal_name_or_invoice_number(
    client, collector, make_customer, make_contact, make_invoice, query
):
    hendriks = make_customer(name="Hendriks", legal_name="Hendriks Data B.V.")
    make_contact(hendriks, name="Ruben Bakker")
    make_invoice(hendriks, issued=dt.date.today(), number="INV-2026-001774")
    other = make_customer(name="Globex")
    make_invoice(other, issued=dt.date.today(), number="INV-2026-0017745")
    client.force_login(collector)

    assert names_in(client.get(URL, {"q": query})) == ["Hendriks"]


def test_an_invoice_number_finds_only_that_invoice_not_longer_numbers_holding_it(
    client, collector, make_customer, make_invoice
):
    make_invoice(make_customer(name="Globex"), issued=dt.date.today(), number="INV-2026-0017745")
    client.force_login(collector)

    assert names_in(client.get(URL, {"q": "INV-2026-001774"})) == []


def match_shown(response, customer) -> str:
    page = response.content.decode()
    row = re.search(rf'<a href="/customers/{customer.pk}/">.*?</th>', page, re.S).group(0)
    found = re.search(r'<span class="search-match">(.*?)</span>', row, re.S)
    return " ".join(found.group(1).split()) if found else ""


def test_each_hit_found_through_something_other_than_its_name_says_why(
    client, collector, make_customer, make_contact, make_invoice
):
    by_name = make_customer(name="Hendriks Logistics")
    by_legal_name = make_customer(name="HDB", legal_name="Hendriks Data B.V.")
    by_contact = make_customer(name="Bakker Bouw")
    make_contact(by_contact, name="Anna Hendriks", email="anna@bakker.example")
    by_email = make_customer(name="Visser")
    make_contact(by_email, name="Piet Visser", email="piet@hendriks-visser.example")
    by_invoice = make_customer(name="Jansen")
    make_invoice(by_invoice, issued=dt.date.today(), number="INV-7")
    client.force_login(collector)

    response = client.get(URL, {"q": "hendriks"})

    assert match_shown(response, by_name) == ""
    assert match_shown(response, by_legal_name) == "legal name Hendriks Data B.V."
    assert match_shown(response, by_contact) == "contact Anna Hendriks"
    assert match_shown(response, by_email) == "contact Piet Visser (piet@hendriks-visser.example)"
    assert match_shown(client.get(URL, {"q": "inv-7"}), by_invoice) == "invoice INV-7"


@pytest.mark.parametrize(("query", "found"), [
    ("lopez acc", "López Accountants"), ("LOPEZ", "López Accountants"),  # the name, typed without its accent
    ("kruger legal", "Krüger Holding"),  # the legal name
    ("celine blanc", "Blanc Interiors"), ("CÉLINE", "Blanc Interiors"),  # a contact's name
    ("josé", "Garcia Foods"),  # an accent typed that the name on file does not have
])
def test_search_finds_a_name_whatever_its_accents(
    client, collector, make_customer, make_contact, query, found
):
    """A collector types "Lopez" or "Muller" as the caller says it, on a
    keyboard without the letter: the account is found all the same."""
    make_customer(name="López Accountants")
    make_customer(name="Krüger Holding", legal_name="Krüger Legal GmbH")
    make_contact(make_customer(name="Blanc Interiors"), name="Céline Blanc", email="ap@blanc.example")
    make_contact(make_customer(name="Garcia Foods"), name="Jose Garcia", email="ap@garcia.example")
    make_customer(name="Lopes Transport")
    client.force_login(collector)

    assert names_in(client.get(URL, {"q": query})) == [found]


@pytest.mark.parametrize(("query", "found"), [
    ("Сергей", "Сергей Волков Trading"),  # й keeps its mark in PostgreSQL's unaccent, not in every fold
    ("がんばる", "がんばる商事"),  # a voiced kana: its mark is part of the word
    ("Андрей", "Volkov Logistics"),  # a contact's name
])
def test_search_finds_a_name_typed_exactly_as_it_is_on_file_in_any_script(
    client, collector, make_customer, make_contact, query, found
):
    """Comparing without accents must not lose what was found with them:
    the name as written on the card is always found."""
    make_customer(name="Сергей Волков Trading")
    make_customer(name="がんばる商事")
    make_contact(make_customer(name="Volkov Logistics"), name="Андрей Волков", email="ap@volkov.example")
    client.force_login(collector)

    assert names_in(client.get(URL, {"q": query})) == [found]


def test_a_hit_found_through_a_contact_whose_name_has_accents_says_so(client, collector, make_customer,
                                                                      make_contact):
    blanc = make_customer(name="Blanc Interiors")
    make_contact(blanc, name="Céline Blanc", email="ap@blanc.example")
    client.force_login(collector)

    assert match_shown(client.get(URL, {"q": "celine"}), blanc) == "contact Céline Blanc"


@pytest.mark.parametrize("query", ["1774", "001774", "2026-001774", " inv-2026-001774 "])
def test_search_finds_an_invoice_by_the_end_of_its_number_as_a_caller_reads_it(
    client, collector, make_customer, make_invoice, query
):
    """On the phone the customer reads "invoice 1774", not INV-2026-001774;
    the account's own timeline filter finds it so, and the search does too."""
    hendriks = make_customer(name="Hendriks")
    make_invoice(hendriks, issued=dt.date.today(), number="INV-2026-001774")
    make_invoice(make_customer(name="Globex"), issued=dt.date.today(), number="INV-2026-0017745")
    client.force_login(collector)

    response = client.get(URL, {"q": query})

    assert names_in(response) == ["Hendriks"]
    assert match_shown(response, hendriks) == "invoice INV-2026-001774"
