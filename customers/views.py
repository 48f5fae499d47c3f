"""The customer list, the account page and the forms that change an account.

One view serves a page and its htmx fragment: the swappable regions are named
partials with the DOM id they render. Without htmx every form works as a plain
page (POST, then redirect); with htmx the form swaps in place and a success
returns the re-rendered section.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import (
    Case,
    F,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    Subquery,
    Sum,
    Value,
    When,
    prefetch_related_objects,
)
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import reswap, retarget

from ar_collections import dunning, worklist
from ar_collections.delivery import credits_held, credits_standing
from ar_collections.models import (
    Dispute,
    DisputeStatus,
    Invoice,
    LateCharge,
    PaymentBehaviour,
    WriteOff,
    overdue_in_other_currencies,
)
from ar_collections.numbers import with_disputed_part
from ar_collections.services import carried_out_once
from ar_collections.timeline import BadCursor
from ar_collections.views import dunning_card_context
from ar_collections.workspace_views import (
    address_unfiltered,
    changed_parts_context,
    commitments_context,
    payments_context,
    preview_context,
    timeline_context,
    work_items_context,
)
from arcrm.dates import format_day
from arcrm.db import MONEY, DaysBetween
from arcrm.htmx import form_autofocus, wants_fragment
from arcrm.money import ZERO, by_currency, quantize
from customers import services
from customers.access import customer_changeable, customer_readable
from customers.forms import AbsenceForm, ContactForm, CustomerFilterForm, CustomerForm, overdue_elsewhere
from customers.models import Contact, ContactAbsence, Customer, search_matches, search_reasons

PAGE_SIZE = 50
# Accounts a search lists at most: beyond them the list asks for more
# letters instead (_searched). A collector reads the first page or two; a
# thousand accounts is twenty pages.
SEARCH_CAP = 1000
# The last one as the aged trial balance and the Numbers page name it: what an
# open dispute holds back is in no bucket of days late there, nor here.
AGING_LABELS = ("Not yet due", "1–30", "31–60", "61–90", "90+", "Under open dispute")
# Credit notes and payments on account listed on the page, the newest of each
# kind: an account with years of unapplied documents shows their totals and
# these, not a table of thousands.
CREDITS_SHOWN = 10
# Write-offs listed on the page, the newest: the timeline has every one.
WRITE_OFFS_SHOWN = 10


# --- Reading ---------------------------------------------------------------


@login_required
@permission_required("customers.view_customer", raise_exception=True)
@require_safe
@vary_on_headers("HX-Request")
def customer_list(request: HttpRequest) -> HttpResponse:
    form = CustomerFilterForm(request.GET, user=request.user)
    today = timezone.localdate()
    customers = form.filter(Customer.objects.visible_to(request.user), on=today, search=False)
    text = form.cleaned_data.get("q") or ""
    matches, complete = _searched(customers, text=text, narrowed=form.narrows()) if text else (None, True)
    if matches is not None:
        page, currencies = _page_of_matches(customers.filter(pk__in=matches), today=today,
                                            number=request.GET.get("page"))
    else:
        customers = (
            _ranked(customers, on=today)
            .select_related("collector", "behaviour")
            .order_by(*_most_overdue_first())
        )
        page = Paginator(customers, PAGE_SIZE).get_page(request.GET.get("page"))
        page.object_list = list(page.object_list)
        currencies = _currencies_in_order(customers)
    _with_other_currencies(page.object_list, today=today)
    _with_disputed(page.object_list)
    reasons = search_reasons(page.object_list, text)
    for customer in page.object_list:
        customer.search_match = reasons.get(customer.pk, "")
    template = "customers/customer_list.html"
    if wants_fragment(request):
        template += "#results"
    return render(request, template, {
        "form": form, "page": page, "house_currency": settings.DEFAULT_CURRENCY,
        # Where the list holds several currencies, every page says so, the
        # first (all in the house currency, as like as not) too: it would read
        # as the most overdue of all, the others' accounts pages further on.
        "currencies": currencies if len(currencies) > 1 else [],
        # Said instead of a count: the accounts beyond the cap were neither counted nor ranked.
        "broad_search": "" if complete else (f"{SEARCH_CAP:,}+ accounts match “{text}”; narrow the search. "
                                             f"The first {SEARCH_CAP:,} found, most overdue first"),
    })


def _searched(customers, *, text: str, narrowed: bool) -> tuple[list[int], bool]:
    """The ids of the accounts the search box's `text` finds (among
    `customers` when filters narrowed them), SEARCH_CAP at most, and whether
    they are all it finds: ranking and counting them all on every keystroke
    took a second and more for "ap@" (every account's billing address) at
    100,000 accounts. A broad text lists the first SEARCH_CAP found (the
    accounts' own names first, search_matches), ranked as any search's; the
    list asks for more letters for the rest. The ids are the search's exact
    matches, for the count, the currencies and the page to read without
    searching again."""
    matches, complete = search_matches(text, cap=SEARCH_CAP)
    if not complete and narrowed:
        # The text alone finds more than the cap; with the filters chosen,
        # fewer may be left: the union, filtered, tells (the slower way).
        matches = list(customers.search(text).order_by().values_list("pk", flat=True)[:SEARCH_CAP + 1])
        complete = len(matches) <= SEARCH_CAP
        matches = matches[:SEARCH_CAP]
    return matches, complete


def _page_of_matches(customers, *, today: dt.date, number) -> tuple:
    """The page `number` of a search's accounts (SEARCH_CAP at most), and the
    currencies they are ranked in. One query ranks them all by id and ranked
    currency, in the list's order (_most_overdue_first): their count and
    currencies follow from it, and only the page's accounts are read whole."""
    ranked = list(_ranked(customers, on=today).order_by(*_most_overdue_first())
                  .values_list("pk", "ranked_currency", "ranked_disputed", "max_days_undisputed"))
    page = Paginator([pk for pk, *_ in ranked], PAGE_SIZE).get_page(number)
    ranking = {pk: rest for pk, *rest in ranked}
    by_pk = Customer.objects.select_related("collector", "behaviour").in_bulk(page.object_list)
    page.object_list = [by_pk[pk] for pk in page.object_list]
    for customer in page.object_list:
        (customer.ranked_currency, customer.ranked_disputed,
         customer.max_days_undisputed) = ranking[customer.pk]
    return page, _currencies_ordered({currency for currency, *_ in ranking.values()})


def _with_other_currencies(customers: list[Customer], *, today: dt.date) -> None:
    """Give each listed account with open invoices in other currencies than
    its own (its currency changed since they were issued, or it is billed in
    several) their open and overdue amounts per currency, as `open_other` and
    `overdue_other` (what is under open dispute apart, as `disputed_other`):
    its behaviour's figures are in its own currency only, and euros must
    neither be shown as dollars nor hidden behind dollars owing nothing. One
    query, and only for a page that lists such an account."""
    mixed = {c.pk: c for c in customers
             if (behaviour := _behaviour_of(c)) and behaviour.other_currency_open_invoices}
    for customer in mixed.values():
        customer.open_other, customer.overdue_other, customer.disputed_other = [], [], []
    if not mixed:
        return
    overdue = Q(due_date__lt=today)
    rows = (
        with_disputed_part(Invoice.objects.open().filter(customer_id__in=list(mixed))
                           .exclude(currency=F("customer__currency")))
        .order_by().values("customer_id", "currency")
        .annotate(open=Sum("open_amount"), overdue=Sum("undisputed", filter=overdue),
                  disputed=Sum("disputed_part", filter=overdue))
        .order_by("customer_id", "currency")
    )
    for row in rows:
        customer = mixed[row["customer_id"]]
        customer.open_other.append((row["currency"], row["open"]))
        if row["overdue"]:
            customer.overdue_other.append((row["currency"], row["overdue"]))
        if row["disputed"]:
            customer.disputed_other.append((row["currency"], row["disputed"]))


def _with_disputed(customers: list[Customer]) -> None:
    """Give each listed account what it has overdue in its own currency less
    what is under open dispute (`overdue_own`, None while its behaviour is not
    computed), and that disputed part (`disputed_own`), from the ranking's
    `ranked_disputed` (_ranked), which is in the currency the account ranks
    in: its own, unless it owes nothing overdue in it. No query."""
    for customer in customers:
        disputed = customer.ranked_disputed if customer.ranked_currency == customer.currency else ZERO
        customer.disputed_own = quantize(disputed, customer.currency)
        behaviour = _behaviour_of(customer)
        # Never below nothing, should the behaviour be older than a payment on a disputed invoice.
        owed = behaviour.overdue_amount - customer.disputed_own if behaviour else None
        customer.overdue_own = None if owed is None else max(owed, ZERO)


def _currencies_in_order(customers) -> list[str]:
    """The currencies the listed accounts are ranked in, in the list's order (see _most_overdue_first)."""
    return _currencies_ordered(set(customers.order_by().values_list("ranked_currency", flat=True).distinct()))


def _currencies_ordered(found: set[str]) -> list[str]:
    return sorted(found, key=lambda code: (code != settings.DEFAULT_CURRENCY, code))


def _ranked(customers, *, on: dt.date):
    """The accounts with the currency they are ranked in (`ranked_currency`)
    and what they have overdue in it (`ranked_overdue`, None while their
    behaviour is not computed): their own currency and their behaviour's
    overdue amount, but for an account owing nothing overdue in its own
    currency and overdue money in another (its currency changed since it was
    billed): that currency, the one of its oldest invoice overdue, and what
    it has overdue in it. Ranked as owing nothing in its new currency, EUR
    861.11 overdue would sit below every account owing a cent. The
    subqueries run only for such accounts, a handful. With what of it is
    under open dispute (`ranked_disputed`) and the most days overdue of
    what is not (`max_days_undisputed`)."""
    moved = Q(behaviour__other_currency_open_invoices__gt=0, behaviour__overdue_amount__lte=0)
    in_other = Subquery(overdue_elsewhere(on=on).order_by("due_date", "pk").values("currency")[:1])
    overdue_in_it = Subquery(
        Invoice.objects.overdue(on=on).filter(customer=OuterRef("pk"), currency=OuterRef("ranked_currency"))
        .order_by().values("customer").annotate(total=Sum("open_amount")).values("total")
    )
    # What of that is under open dispute, left out of what the list shows and
    # ranks by, as the aged trial balance keeps it apart: dunning does not
    # chase it. Looked up only for the accounts with an open dispute, their
    # ids read once and hashed, so the whole book is not summed per account.
    # Overdue as of the day the behaviour was computed, as its overdue amount
    # is: an invoice fallen due since and disputed is in neither, never taken
    # off a figure that does not hold it yet.
    disputed_in_it = Subquery(
        with_disputed_part(Invoice.objects.open().filter(
            customer=OuterRef("pk"), currency=OuterRef("ranked_currency"),
            due_date__lt=Coalesce(OuterRef("behaviour__computed_on"), Value(on)),
        ))
        .order_by().values("customer").annotate(total=Sum("disputed_part")).values("total")
    )
    # Most days overdue, as the behaviour counts them (in any currency, to the
    # day it was computed), of the invoices with money not under open dispute:
    # one wholly disputed is not chased, and is no more overdue here than in
    # the amount beside. For the same few accounts.
    oldest_undisputed = Subquery(
        with_disputed_part(Invoice.objects.open().filter(
            customer=OuterRef("pk"), due_date__lt=OuterRef("behaviour__computed_on"),
        ))
        .filter(undisputed__gt=0).order_by("due_date").values("due_date")[:1]
    )
    in_dispute = Q(pk__in=Dispute.objects.filter(status=DisputeStatus.OPEN).values("customer_id"))
    return customers.annotate(
        ranked_currency=Case(When(moved, then=Coalesce(in_other, F("currency"))), default=F("currency")),
    ).annotate(
        ranked_disputed=Case(When(in_dispute, then=Coalesce(disputed_in_it, Value(ZERO))),
                             default=Value(ZERO), output_field=MONEY),
        max_days_undisputed=Case(
            When(in_dispute,
                 then=Coalesce(DaysBetween("behaviour__computed_on", oldest_undisputed), Value(0))),
            default=F("behaviour__max_days_overdue"), output_field=IntegerField()),
    ).annotate(
        ranked_overdue=Case(When(moved & ~Q(ranked_currency=F("currency")), then=overdue_in_it),
                            default=F("behaviour__overdue_amount")) - F("ranked_disputed"),
    )


def _most_overdue_first() -> list:
    """Without exchange rates EUR 5,000 and JPY 900,000 cannot be ranked
    against each other: the accounts are ranked within the currency they owe
    in (_ranked: their own, as a rule), the house currency's first (most
    accounts are in it), then the others by code, as amounts are listed
    everywhere else."""
    return [
        Case(When(ranked_currency=settings.DEFAULT_CURRENCY, then=Value(0)), default=Value(1)),
        "ranked_currency",
        # Customers whose behaviour is not computed yet sort after those owing nothing.
        F("ranked_overdue").desc(nulls_last=True),
        "name",
        "pk",
    ]


@login_required
@permission_required("customers.view_customer", raise_exception=True)
@require_safe
@vary_on_headers("HX-Request", "HX-Target")
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    customer = customer_readable(request, pk)
    today = timezone.localdate()
    # Cancel links in the inline forms ask for just the section they replace,
    # naming with `focus` what takes the keyboard once the form is gone.
    target = request.htmx.target if wants_fragment(request) else None
    focus = request.GET.get("focus", "")
    if target == "account-card":
        return _render_card(request, customer, focus=focus == "card")
    if target == "contacts":
        return _render_contacts(request, customer, focus=int(focus) if focus.isdigit() else focus)
    try:
        timeline = timeline_context(request, customer)
    except BadCursor as error:
        return HttpResponseBadRequest(str(error))
    invoices = _invoices_context(customer, today=today)
    # The Dunning card and the preview read the account's dunning once, its
    # open invoices those the page lists.
    read = dunning.account_read(customer, on=today, open_invoices=invoices["invoices"])
    context = {
        **_card_context(customer),
        **_contacts_context(customer, today=today),
        **invoices,
        **payments_context(customer, today=today),
        **dunning_card_context(customer, user=request.user, today=today, read=read),
        **timeline,
        **preview_context(customer, today=today, read=read),
        **commitments_context(customer, user=request.user),
        **_behaviour_context(customer, today=today, invoices=invoices["invoices"]),
        **work_items_context(customer, user=request.user),
        "today": today,
    }
    return render(request, "customers/customer_detail.html", context)


def header_context(customer: Customer, *, today: dt.date) -> dict:
    """What the account header and the payment behaviour show after an inline
    action changed something (its pauses come with the Dunning card's
    context, which reads them anyway)."""
    _contacts_loaded(customer, today=today)
    invoices = _invoices_context(customer, today=today)
    # Recomputed by the action (a payment, a credit): read afresh, not from
    # the customer as it was loaded before it.
    behaviour = PaymentBehaviour.objects.filter(customer_id=customer.pk).first()
    return {
        **invoices,
        **_written_to_today(customer, today=today),
        **_behaviour_context(customer, today=today, invoices=invoices["invoices"], behaviour=behaviour),
    }


def _behaviour_context(customer: Customer, *, today: dt.date, invoices: list[Invoice],
                       behaviour: PaymentBehaviour | None = None) -> dict:
    """The payment behaviour (`behaviour`, else the customer's), with its
    overdue less what is under open dispute (`behaviour_overdue`, the
    disputed part `behaviour_disputed`), how many invoices that is
    (`behaviour_overdue_invoices`) and its most days overdue of the
    invoices not wholly disputed (`behaviour_max_days`), as the customer list
    shows them: read by the list's own ranking query for this account
    (_ranked, _with_disputed), only when one of its open `invoices` (read
    with their disputed part) is under dispute; else the behaviour's own."""
    behaviour = behaviour or _behaviour_of(customer)
    if behaviour is None or not any(i.disputed_part for i in invoices):
        return {"behaviour": behaviour, "behaviour_disputed": ZERO,
                "behaviour_overdue": behaviour.overdue_amount if behaviour else None,
                "behaviour_overdue_invoices": behaviour.overdue_invoices if behaviour else None,
                "behaviour_max_days": behaviour.max_days_overdue if behaviour else None}
    ranked = _ranked(Customer.objects.filter(pk=customer.pk), on=today).get()
    ranked.behaviour = behaviour
    _with_disputed([ranked])
    # Counted as the other currencies' invoices beside it are
    # (overdue_other_counted): one wholly under dispute is not among them.
    # Of those the behaviour counted, due before the day it was computed.
    wholly_disputed = sum(1 for i in invoices if i.currency == customer.currency
                          and i.due_date < behaviour.computed_on and i.disputed_part and not i.undisputed)
    return {
        "behaviour": behaviour,
        "behaviour_overdue": ranked.overdue_own,
        "behaviour_disputed": ranked.disputed_own,
        "behaviour_overdue_invoices": max(behaviour.overdue_invoices - wholly_disputed, 0),
        "behaviour_max_days": ranked.max_days_undisputed,
    }


# --- Changing the account card ---------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def customer_edit(request: HttpRequest, pk: int) -> HttpResponse:
    customer = customer_changeable(request, pk, permission="customers.change_customer")
    # The form gets its own copy: a rejected name must not show up in the page heading.
    form = CustomerForm(
        request.POST if request.method == "POST" else None,
        instance=Customer.objects.get(pk=customer.pk),
        # Credit terms are a manager's call (DESIGN: managers own extended terms,
        # credit holds and C.O.D.).
        may_set_terms=request.user.has_perm("customers.set_credit_terms"),
    )
    if form.is_bound and form.is_valid():
        try:
            services.customer_update(
                customer=customer, actor=request.user, changes=form.changes(),
                reason=form.cleaned_data.get("terms_reason", ""),
            )
        except ValidationError as error:
            form.add_error(None, error.messages)
        else:
            messages.success(request, "Account card saved.")
            if request.htmx:
                customer = customer_readable(request, pk)
                card = _render_card(request, customer, focus=True)
                return _with_header_and_timeline(request, card, customer)
            # The card sits below the timeline: the page opens at its heading,
            # as the heading takes the keyboard with htmx.
            return redirect(reverse("customers:detail", args=[pk]) + "#account-name")
    return _form_response(
        request, "customers/customer_form.html", "account-card", form,
        {"customer": customer, "form_id": "account-card"},
    )


# --- Contacts --------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def contact_edit(request: HttpRequest, pk: int, contact_id: int | None = None) -> HttpResponse:
    """Add a contact (no contact_id) or change one."""
    permission = "customers.change_contact" if contact_id else "customers.add_contact"
    customer = customer_changeable(request, pk, permission=permission)
    if contact_id:
        contact = get_object_or_404(Contact, pk=contact_id, customer=customer)
    else:
        contact = Contact(customer=customer)
    form_id = f"contact-form-{contact_id or 'new'}"
    # Ids prefixed per form: several forms can be open on the account page at once.
    form = ContactForm(
        request.POST if request.method == "POST" else None,
        instance=contact,
        auto_id=f"{form_id}-%s",
    )
    if form.is_bound and form.is_valid():
        try:
            carried_out_once(form, lambda: services.contact_save(contact=form.instance, actor=request.user))
        except ValidationError as error:
            form.add_error(None, error.messages)
        else:
            # A new address, or the refused one marked as working: the
            # "find a working address" item goes now, not at the next refresh.
            worklist.refused_addresses_fixed(contact=form.instance, actor=request.user)
            messages.success(request, f"Contact {form.instance.name} saved.")
            return _contacts_changed(request, customer, focus=form.instance.pk)
    return _form_response(
        request, "customers/contact_form.html", "contact-form", form,
        {
            "customer": customer,
            "contact": contact,
            "form_id": form_id,
        },
    )


@login_required
@require_POST
def contact_delete(request: HttpRequest, pk: int, contact_id: int) -> HttpResponse:
    customer = customer_changeable(request, pk, permission="customers.delete_contact")
    contact = get_object_or_404(Contact, pk=contact_id, customer=customer)
    services.contact_delete(contact=contact, actor=request.user)
    messages.success(request, f"Contact {contact.name} removed.")
    return _contacts_changed(request, customer, focus="contacts")


@login_required
@require_http_methods(["GET", "POST"])
def absence_add(request: HttpRequest, pk: int, contact_id: int) -> HttpResponse:
    customer = customer_changeable(request, pk, permission="customers.add_contactabsence")
    contact = get_object_or_404(Contact, pk=contact_id, customer=customer)
    form_id = f"absence-form-{contact.pk}"
    # The days as chosen so far: the "Write to instead" menu asks for itself
    # again with them and offers only those in on all of them.
    chosen = {name: request.GET[name] for name in ("starts_on", "ends_on", "delegate") if name in request.GET}
    form = AbsenceForm(
        request.POST if request.method == "POST" else None,
        instance=ContactAbsence(contact=contact),
        auto_id=f"{form_id}-%s",
        initial=chosen,
    )
    # Only the menu is swapped, so what the user is typing keeps the keyboard;
    # a change made while the last one is asked about asks again. Only the
    # days go along (the menu's own choice with them), not the CSRF token.
    days = [f"#{form[name].auto_id}" for name in ("starts_on", "ends_on")]
    form.fields["delegate"].widget.attrs.update({
        "hx-get": reverse("customers:absence_add", args=[customer.pk, contact.pk]),
        "hx-trigger": ", ".join(f"change from:{d}" for d in days), "hx-include": ", ".join(days),
        "hx-select": f"#{form['delegate'].auto_id}", "hx-target": "this", "hx-swap": "outerHTML",
        "hx-sync": "this:replace",
    })
    if form.is_bound and form.is_valid():
        try:
            data = {name: value for name, value in form.cleaned_data.items() if name != "submission"}
            carried_out_once(form, lambda: services.absence_add(contact=contact, actor=request.user, **data))
        except ValidationError as error:
            form.add_error(None, error.messages)
        else:
            messages.success(request, f"Absence of {contact.name} recorded.")
            return _contacts_changed(request, customer, focus=contact.pk)
    return _form_response(
        request, "customers/absence_form.html", "absence-form", form,
        {"customer": customer, "contact": contact, "form_id": form_id},
    )


@login_required
@require_POST
def absence_delete(request: HttpRequest, pk: int, absence_id: int) -> HttpResponse:
    customer = customer_changeable(request, pk, permission="customers.delete_contactabsence")
    absence = get_object_or_404(
        ContactAbsence.objects.select_related("contact"), pk=absence_id, contact__customer=customer
    )
    services.absence_delete(absence=absence, actor=request.user)
    messages.success(request, f"Absence of {absence.contact.name} removed.")
    return _contacts_changed(request, customer, focus=absence.contact_id)


# --- Helpers ---------------------------------------------------------------


def _form_response(
    request: HttpRequest, template: str, partial: str, form, context: dict
) -> HttpResponse:
    """The form as a page, or as a fragment for htmx; 422 when it was rejected.

    A rejected htmx form replaces itself rather than the section a success
    would re-render.
    """
    status = 422 if form.is_bound else 200
    # The link that opened the form is swapped away: the form takes the keyboard.
    form_autofocus(form, first=True)
    context = {**context, "form": form}
    if not request.htmx:
        return render(request, template, context, status=status)
    response = render(request, f"{template}#{partial}", context, status=status)
    if form.is_bound:
        retarget(response, f"#{context['form_id']}")
        reswap(response, "outerHTML")
    return response


def _contacts_changed(request: HttpRequest, customer: Customer, *, focus: int | str) -> HttpResponse:
    """The contacts re-rendered after a change; `focus` is the contact whose
    heading takes the keyboard, or "contacts" for the list's own heading."""
    if request.htmx:
        return _with_header_and_timeline(request, _render_contacts(request, customer, focus=focus), customer)
    # Without htmx the page opens at the same heading (a long list of contacts
    # would leave the one changed out of sight below the section's top).
    anchor = "contacts-title" if focus == "contacts" else f"contact-{focus}-name"
    return redirect(reverse("customers:detail", args=[customer.pk]) + f"#{anchor}")


def _with_header_and_timeline(
    request: HttpRequest, response: HttpResponse, customer: Customer
) -> HttpResponse:
    """A change to the card or the contacts also changes the header (who to
    contact today, the credit-hold badge) and adds a timeline event: both swap
    in out of band beside the section that was edited."""
    context = changed_parts_context(request, customer)
    response.content += render_to_string("customers/_account_edited.html", context, request=request).encode()
    return address_unfiltered(request, response, customer)


# The button pressed in a form is swapped away with it: the heading of what
# was edited takes the keyboard (autofocus, which htmx honours in what it swaps
# in), rather than the focus falling to the top of the page. Not when the card
# reloads itself after a segment override: the keyboard is elsewhere then.


def _render_card(request: HttpRequest, customer: Customer, *, focus: bool = False) -> HttpResponse:
    context = {**_card_context(customer), "focus_heading": focus}
    return render(request, "customers/customer_detail.html#account-card", context)


def _render_contacts(request: HttpRequest, customer: Customer, *, focus: int | str = "") -> HttpResponse:
    context = {**_contacts_context(customer, today=timezone.localdate()), "focus": focus}
    return render(request, "customers/customer_detail.html#contacts", context)


def _card_context(customer: Customer) -> dict:
    rhythm_said, order_gap = _order_rhythm_said(customer, today=timezone.localdate())
    return {
        "customer": customer,
        "referrals": list(customer.referrals.all()),
        "years_served": customer.years_served(),
        "order_rhythm_said": rhythm_said,
        "order_gap": order_gap,
    }


def _order_rhythm_said(customer: Customer, *, today: dt.date) -> tuple[str, bool]:
    """The account's usual interval between orders and the days since its
    last, in words ("Orders every ~30 days (learned from 12 orders); last
    order 52 days ago"), and whether that is an order gap (worklist.is_order_gap)."""
    rhythm = worklist.order_rhythm(customer, on=today)
    set_interval = customer.typical_order_interval_days
    if rhythm is None:
        return (f"Orders every ~{set_interval} days (as set on the account card); no order yet"
                if set_interval else "No order yet"), False
    days = rhythm.days_since(on=today)
    last = {0: "last order today", 1: "last order yesterday"}.get(days, f"last order {days} days ago")
    if rhythm.interval is None:
        return (f"Too few orders to learn its rhythm ({rhythm.orders} so far, "
                f"{worklist.ORDER_DAYS_TO_LEARN} needed); {last}"), False
    source = (f"learned from {rhythm.orders} orders" if rhythm.learned else "as set on the account card")
    return f"Orders every ~{rhythm.interval} days ({source}); {last}", rhythm.is_gap(on=today)


def _contacts_context(customer: Customer, *, today: dt.date) -> dict:
    contacts = _contacts_loaded(customer, today=today)
    for contact in contacts:
        contact.away_today = contact.absence_on(today)
    return {
        "customer": customer,
        "contacts": contacts,
        **_written_to_today(customer, today=today),
        "today": today,
    }


def _contacts_loaded(customer: Customer, *, today: dt.date) -> list[Contact]:
    """The account's contacts, loaded on it with their absences: two queries."""
    # Past absences no longer matter to anyone; only current and coming ones are loaded.
    absences = ContactAbsence.objects.filter(ends_on__gte=today)
    prefetch_related_objects(
        [customer],
        Prefetch("contacts", queryset=Contact.objects.prefetch_related(
            Prefetch("absences", queryset=absences)
        )),
    )
    contacts = list(customer.contacts.all())
    by_id = {contact.pk: contact for contact in contacts}
    for contact in contacts:
        for absence in contact.absences.all():
            # Point each stand-in at the contact already loaded, so the page
            # shows delegates and stand_in() follows a chain of absences
            # without a query per hop.
            if absence.delegate_id in by_id:
                absence.delegate = by_id[absence.delegate_id]
    return contacts


def _written_to_today(customer: Customer, *, today: dt.date) -> dict:
    """Whom invoices and reminders, and escalations, go to today (as
    Customer.billing_contact and principal_contact say), beside whom they
    stand in for or how long they are away; and, when the contact of record
    and their stand-ins are all away, why nobody. From the contacts loaded
    (_contacts_loaded): no query."""
    billing_of_record = customer.billing_contact_of_record()
    principal_of_record = customer.principal_contact_of_record()
    billing = billing_of_record.stand_in(on=today) if billing_of_record else None
    principal = principal_of_record.stand_in(on=today) if principal_of_record else None
    return {
        "billing_contact": billing,
        "principal_contact": principal,
        "billing_away": ("" if billing or not billing_of_record
                         else billing_of_record.nobody_to_write_to(on=today)),
        "principal_away": ("" if principal or not principal_of_record
                           else principal_of_record.nobody_to_write_to(on=today)),
        "billing_absence": _absence_said(billing, billing_of_record, on=today),
        "principal_absence": _absence_said(principal, principal_of_record, on=today),
    }


def _absence_said(written_to: Contact | None, of_record: Contact | None, *, on: dt.date) -> str:
    """Beside whom the account writes to today: whom a stand-in writes for,
    or that the contact is away and asked to be written to all the same (so
    a colleague phoning knows not to expect them)."""
    if written_to is None or of_record is None:
        return ""
    if written_to.pk != of_record.pk:
        return f"for {of_record.name}, away until {format_day(of_record.away_until(on))}"
    if until := written_to.away_until(on):
        return f"away until {format_day(until)}; still written to, as asked"
    return ""


def _invoices_context(customer: Customer, *, today: dt.date) -> dict:
    # With what an open dispute holds back of each (disputed_part), for the aging:
    # a join in the same statement, not a query per invoice.
    invoices = list(with_disputed_part(customer.invoices.open()).order_by("due_date", "number"))
    for invoice in invoices:
        invoice.days_overdue = invoice.days_late(on=today)
    in_account_currency = [i for i in invoices if i.currency == customer.currency]
    others = [i for i in invoices if i.currency != customer.currency]
    open_total = sum((i.open_amount for i in in_account_currency), ZERO)
    # Overdue less what an open dispute holds back, as the customer list and
    # the aged trial balance say it: dunning does not chase that part, which
    # the header shows beside (`disputed_figures`).
    overdue_total = sum((i.undisputed for i in in_account_currency if i.days_overdue), ZERO)
    open_other = by_currency((i.currency, i.open_amount) for i in others)
    overdue_other = overdue_in_other_currencies(invoices, currency=customer.currency, on=today)
    disputed = by_currency((i.currency, i.disputed_part) for i in invoices
                           if i.days_overdue and i.disputed_part)
    # Late fees and interest still owed: an account whose invoices are all paid
    # may still owe them, and the card says so rather than "nothing open".
    charges = list(LateCharge.objects.filter(customer=customer).standing()
                   .select_related("invoice").order_by("created_at", "pk"))
    # Credit notes not yet set against an invoice and money kept on account:
    # the next notice lets the customer deduct them, and the collector on the
    # phone must know of them before asking for money.
    credits = credits_standing(customer, newest=CREDITS_SHOWN)
    held = credits_held(customer)
    # What was written off as bad debt: those invoices are no longer open, and
    # the collector must know before asking the customer for anything.
    write_offs = list(WriteOff.objects.filter(customer=customer).select_related("invoice", "decided_by")
                      [:WRITE_OFFS_SHOWN + 1])
    return {
        "invoices": invoices,
        "write_offs": write_offs[:WRITE_OFFS_SHOWN],
        "write_offs_older": len(write_offs) > WRITE_OFFS_SHOWN,
        "charges": charges,
        "charges_owed": by_currency((c.currency, c.open_amount) for c in charges),
        "credits": credits,
        "credits_held": [(currency, total) for currency, total, _ in held],
        "credits_hidden": sum(count for _, _, count in held) - len(credits),
        "open_total": open_total,
        "overdue_total": overdue_total,
        # Beside the account currency's totals, never folded into them.
        "open_other": open_other,
        "overdue_other": overdue_other,
        # As the header says them: the account currency's, unless it owes
        # nothing in it while it does in another (its currency changed since
        # those invoices were issued), then the other currencies'.
        "open_figures": _figures(customer.currency, open_total, open_other),
        "overdue_figures": _figures(customer.currency, overdue_total, overdue_other),
        "disputed_figures": disputed,
        # The counts beside the other currencies' amounts in the payment behaviour.
        "open_other_counted": [(c, amount, sum(1 for i in others if i.currency == c))
                               for c, amount in open_other],
        "overdue_other_counted": [(c, amount, sum(1 for i in others
                                                  if i.currency == c and i.days_overdue and i.undisputed))
                                  for c, amount in overdue_other],
        "invoice_aging": _aging(in_account_currency, today=today),
        # An aging per currency: the account's own first, then the others by code.
        "invoice_agings": [
            (currency, _aging([i for i in invoices if i.currency == currency], today=today))
            for currency in ([customer.currency] if in_account_currency or not others else [])
            + [c for c, _ in open_other]
        ],
        "other_currency_invoices": len(others),
    }


def _figures(currency: str, amount: Decimal, other: list[tuple[str, Decimal]]) -> list[tuple[str, Decimal]]:
    return ([(currency, amount)] if amount or not other else []) + other


def _aging(invoices, *, today: dt.date) -> list[tuple[str, Decimal]]:
    """Open amounts by days overdue today, in the buckets the behaviour block
    uses; what an open dispute holds back in a bucket of its own (of an invoice
    disputed in part, only that part), as the aged trial balance has it, so the
    account's row there and its card show the same figures."""
    totals = dict.fromkeys(AGING_LABELS, ZERO)
    for invoice in invoices:
        days = invoice.days_late(on=today)
        if days == 0:
            label = AGING_LABELS[0]
        elif days <= 30:
            label = AGING_LABELS[1]
        elif days <= 60:
            label = AGING_LABELS[2]
        elif days <= 90:
            label = AGING_LABELS[3]
        else:
            label = AGING_LABELS[4]
        totals[label] += invoice.undisputed
        totals[AGING_LABELS[5]] += invoice.disputed_part
    return list(totals.items())


def _behaviour_of(customer: Customer) -> PaymentBehaviour | None:
    try:
        return customer.behaviour
    except PaymentBehaviour.DoesNotExist:
        return None
