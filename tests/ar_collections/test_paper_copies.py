"""Invoice copies and statements for contacts who take paper: they go to the
print queue with the dunning letters, are printed from the PDF there, marked
posted, and the account's timeline says both. A contact who takes e-mail
still gets e-mail, read back from a real mail server."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from ar_collections import paper, worklist, workspace
from ar_collections.models import (
    ActionStatus,
    Channel,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningRun,
    DunningStep,
    InvoiceStatus,
    OutgoingMail,
    PaperDocument,
    PaperKind,
    StepAction,
)
from customers.models import ContactRole, InvoiceDelivery, ReminderChannel, TimelineEvent

from .conftest import frozen, sent_once

TODAY = dt.date(2026, 4, 20)
HTMX = {"HX-Request": "true"}
QUEUE = reverse("collections:letters")
PRINTED = reverse("collections:letters_printed")
LOTTE_ADDRESS = "Vos Architects B.V.\nt.a.v. Lotte Meijer\nKeizersgracht 12\n1015 CJ Amsterdam"


def url(name: str, customer) -> str:
    return reverse(f"collections:{name}", args=[customer.pk])


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture
def vos(make_customer, make_contact, make_invoice):
    """Vos Architects: Lotte Meijer, their billing contact, takes paper (invoices
    and letters) and has no e-mail address; Jan de Wit in purchasing takes e-mail.
    One invoice is open."""
    customer = make_customer(name="Vos Architects", legal_name="Vos Architects B.V.")
    make_contact(customer, name="Lotte Meijer", email="", is_primary_billing=True, role=ContactRole.AP,
                 postal_address=LOTTE_ADDRESS, invoice_delivery=InvoiceDelivery.PAPER,
                 reminder_channel=ReminderChannel.LETTER)
    make_contact(customer, name="Jan de Wit", email="jan@vos-architects.test", role=ContactRole.PURCHASING)
    make_invoice(customer, number="INV-2026-000771", issued=dt.date(2026, 2, 2), due=dt.date(2026, 3, 4),
                 amount="1815.00")
    return customer


def lotte(customer):
    return customer.contacts.get(name="Lotte Meijer")


def jan(customer):
    return customer.contacts.get(name="Jan de Wit")


def copy_posted(client, customer, *, to, headers=None):
    with frozen(TODAY):
        return client.post(url("invoice_copy", customer),
                           sent_once({"invoice": customer.invoices.get().pk, "contact": to.pk}),
                           headers=headers or {})


def downloaded(client, document, pdf_text) -> str:
    response = client.get(reverse("collections:paper_download", args=[document.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    return one_line(pdf_text(b"".join(response.streaming_content)))


def queue_page(client) -> str:
    return " ".join(client.get(QUEUE).content.decode().split())


def summaries(customer) -> list[str]:
    return list(TimelineEvent.objects.filter(customer=customer).order_by("occurred_at", "pk")
                .values_list("summary", flat=True))


# --- The form says how each contact is reached -----------------------------------------------


def test_the_copy_form_offers_each_contact_by_post_or_by_e_mail_as_they_take_it(client, collector, vos):
    client.force_login(collector)

    page = client.get(url("invoice_copy", vos), headers=HTMX).content.decode()

    assert "Lotte Meijer · by post to Vos Architects B.V." in page
    assert "Jan de Wit · by e-mail to jan@vos-architects.test" in page


def test_a_copy_to_a_contact_with_neither_address_is_refused_and_changes_nothing(
    client, collector, vos, make_contact
):
    nobody = make_contact(vos, name="Piet Zonder", email="")
    client.force_login(collector)

    response = copy_posted(client, vos, to=nobody)

    assert response.status_code == 422
    assert ("The copy cannot be sent: Piet Zonder has neither an e-mail address nor a postal address on file."
            in response.content.decode())
    assert not PaperDocument.objects.exists() and not OutgoingMail.objects.exists()


def test_the_statement_form_says_it_goes_by_post_to_a_billing_contact_who_takes_paper(client, collector, vos):
    client.force_login(collector)

    page = " ".join(client.get(url("statement_send", vos), headers=HTMX).content.decode().split())

    assert ("The statement goes by post to Lotte Meijer, Vos Architects B.V.: it waits in the print queue."
            in page)


# --- Copies and statements on paper -----------------------------------------------------------


def test_a_copy_to_a_contact_who_takes_paper_waits_in_the_print_queue_as_the_invoice_s_pdf(
    client, collector, vos, pdf_text
):
    client.force_login(collector)

    response = copy_posted(client, vos, to=lotte(vos))

    assert response.status_code == 302
    document = PaperDocument.objects.get()
    assert (document.kind, document.invoice.number, document.recipient_name) == (
        PaperKind.INVOICE_COPY, "INV-2026-000771", "Lotte Meijer")
    assert document.recipient_address == LOTTE_ADDRESS and document.printed_at is None
    assert not OutgoingMail.objects.exists()
    page = queue_page(client)
    assert "1 document to print" in page and "Copy of invoice INV-2026-000771" in page
    assert "Lotte Meijer" in page
    text = downloaded(client, document, pdf_text)
    assert "Vos Architects B.V." in text and "Copy of invoice INV-2026-000771" in text
    assert "Keizersgracht 12" in text and "EUR 1,815.00" in text
    assert summaries(vos)[-1] == ("Copy of invoice INV-2026-000771 queued for the post to Lotte Meijer, "
                                  "Vos Architects B.V.")


def test_a_statement_to_a_billing_contact_who_takes_paper_waits_in_the_print_queue(
    client, collector, vos, pdf_text
):
    client.force_login(collector)

    with frozen(TODAY):
        response = client.post(url("statement_send", vos), sent_once({"note": ""}))

    assert response.status_code == 302
    document = PaperDocument.objects.get()
    assert (document.kind, document.invoice, document.recipient_name) == (
        PaperKind.STATEMENT, None, "Lotte Meijer")
    assert not OutgoingMail.objects.exists()
    assert "Statement of account" in queue_page(client)
    text = downloaded(client, document, pdf_text)
    assert "Vos Architects B.V." in text and "INV-2026-000771" in text and "Keizersgracht 12" in text
    assert summaries(vos)[-1] == ("Statement of account queued for the post to Lotte Meijer, "
                                  "Vos Architects B.V.: 1 open invoice; balance EUR 1,815.00")


def test_a_statement_by_post_carries_the_note_the_form_offers_printed_on_it(client, collector, vos, pdf_text):
    client.force_login(collector)
    form = " ".join(client.get(url("statement_send", vos), headers=HTMX).content.decode().split())
    assert 'name="note"' in form and "The note is printed on the statement, above its figures." in form

    with frozen(TODAY):
        response = client.post(url("statement_send", vos),
                               sent_once({"note": "As agreed on the phone: by 30 April."}))

    assert response.status_code == 302
    document = PaperDocument.objects.get()
    assert "As agreed on the phone: by 30 April." in downloaded(client, document, pdf_text)
    assert summaries(vos)[-1] == ("Statement of account queued for the post to Lotte Meijer, "
                                  "Vos Architects B.V.: 1 open invoice; balance EUR 1,815.00 — As agreed on "
                                  "the phone: by 30 April.")


def test_a_copy_to_a_contact_who_takes_e_mail_is_still_e_mailed(
    client, collector, vos, smtp_server, django_capture_on_commit_callbacks, eager_celery, pdf_text
):
    client.force_login(collector)

    with django_capture_on_commit_callbacks(execute=True):
        response = copy_posted(client, vos, to=jan(vos))

    assert response.status_code == 302
    (message,) = smtp_server.messages
    assert message["To"] == "Jan de Wit <jan@vos-architects.test>"
    (attachment,) = list(message.iter_attachments())
    assert "INV-2026-000771" in one_line(pdf_text(attachment.get_content()))
    assert not PaperDocument.objects.exists()


# --- Marked posted ------------------------------------------------------------------------------


def test_marked_posted_a_copy_leaves_the_queue_and_the_timeline_says_so(client, collector, vos):
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))
    document = PaperDocument.objects.get()

    with frozen(TODAY):
        response = client.post(PRINTED, {"documents": [document.pk]})

    assert response.status_code == 302
    document.refresh_from_db()
    assert document.printed_at is not None and document.printed_by == collector
    assert "Copy of invoice INV-2026-000771" not in queue_page(client)
    assert summaries(vos)[-1] == "Copy of invoice INV-2026-000771 to Lotte Meijer posted on 20 Apr 2026"
    account_page = client.get(reverse("customers:detail", args=[vos.pk])).content.decode()
    assert "queued for the post to Lotte Meijer" in account_page and "posted on 20 Apr 2026" in account_page


def make_letter(customer, make_invoice) -> DunningAction:
    """A dunning letter written now and waiting in the print queue."""
    run, _ = DunningRun.objects.get_or_create(run_date=TODAY)
    cycle, _ = DunningCycle.objects.get_or_create(customer=customer, closed_on=None,
                                                  defaults={"number": 1, "opened_on": TODAY})
    letter = DunningAction.objects.create(
        run=run, cycle=cycle, customer=customer, status=ActionStatus.DONE, channel=Channel.LETTER,
        step=DunningStep.objects.get(policy__segment="prompt", action=StepAction.LETTER),
        planned_on=TODAY, pay_by=TODAY + dt.timedelta(days=10), done_at=timezone.now(),
        recipient_address="Main Street 1, 10115 Berlin",
    )
    invoice = make_invoice(customer, issued=dt.date(2026, 1, 5))
    DunningActionInvoice.objects.create(action=letter, invoice=invoice, open_amount=invoice.total_amount,
                                        currency=invoice.currency)
    letter.letter_pdf.save(f"dunning-{letter.pk}.pdf", ContentFile(b"%PDF-1.4\n% a letter\n"))
    return letter


def test_letters_and_copies_are_one_list_oldest_first_and_are_marked_posted_together(
    client, collector, vos, make_customer, make_invoice
):
    client.force_login(collector)
    with frozen(TODAY):
        letter = make_letter(make_customer(name="Bakker & Zn"), make_invoice)
    copy_posted(client, vos, to=lotte(vos))  # written at the same instant: after the letter
    document = PaperDocument.objects.get()

    response = client.get(QUEUE)
    assert [(type(x).__name__, x.pk) for x in response.context["letters"]] == [
        ("DunningAction", letter.pk), ("PaperDocument", document.pk)]
    assert "2 documents to print" in response.content.decode()

    with frozen(TODAY):
        marked = client.post(PRINTED, {"letters": [letter.pk], "documents": [document.pk]}, headers=HTMX)

    assert marked.status_code == 200
    assert "2 documents marked as printed." in marked.content.decode()
    assert "Nothing waits to be printed." in marked.content.decode()
    letter.refresh_from_db()
    document.refresh_from_db()
    assert letter.printed_at is not None and document.printed_at is not None


@pytest.mark.parametrize("rows", [2, 20])
def test_the_print_queue_costs_the_same_number_of_queries_with_copies_in_it(
    client, collector, make_customer, make_contact, make_invoice, django_assert_num_queries, rows
):
    for _ in range(rows):
        customer = make_customer()
        make_letter(customer, make_invoice)
        contact = make_contact(customer, email="", postal_address="Main Street 1\n10115 Berlin",
                               invoice_delivery=InvoiceDelivery.PAPER)
        PaperDocument.objects.create(customer=customer, kind=PaperKind.STATEMENT, recipient=contact,
                                     recipient_name=contact.name, recipient_address=contact.postal_address,
                                     pdf="letters/statement.pdf", created_by=collector,
                                     done_at=timezone.now())
    client.force_login(collector)

    # As test_views_letters pins it: the letters' eleven, and the paper
    # documents counted and listed (with their customer and invoice).
    with django_assert_num_queries(13):
        response = client.get(QUEUE)

    assert len(response.context["letters"]) == 2 * rows


# --- htmx, methods, who -----------------------------------------------------------------------


def test_a_copy_sent_with_htmx_swaps_the_account_page_in_place_and_says_where_it_went(client, collector, vos):
    client.force_login(collector)

    response = copy_posted(client, vos, to=lotte(vos), headers=HTMX)

    assert response.status_code == 200
    assert response.headers["HX-Retarget"] == "#action-panel"
    page = response.content.decode()
    assert "Copy of INV-2026-000771 to Lotte Meijer is in the print queue for the post." in page
    assert "queued for the post to Lotte Meijer" in page
    assert PaperDocument.objects.count() == 1


def test_marking_posted_without_htmx_goes_back_to_the_queue(client, collector, vos):
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))

    response = client.post(PRINTED, {"documents": [PaperDocument.objects.get().pk]})

    assert response.status_code == 302 and response.url.startswith(QUEUE)
    assert PaperDocument.objects.filter(printed_at__isnull=False).count() == 1


def test_the_download_and_the_marking_answer_only_their_methods(client, collector, vos):
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))
    document = PaperDocument.objects.get()

    assert client.post(reverse("collections:paper_download", args=[document.pk])).status_code == 405
    assert client.get(PRINTED).status_code == 405
    document.refresh_from_db()
    assert document.printed_at is None


def test_another_collector_may_neither_send_a_copy_of_nor_download_nor_post_this_account_s_paper(
    client, collector, other_collector, vos
):
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))
    document = PaperDocument.objects.get()
    client.force_login(other_collector)

    assert copy_posted(client, vos, to=lotte(vos)).status_code == 403
    assert client.get(reverse("collections:paper_download", args=[document.pk])).status_code == 403
    assert client.post(PRINTED, {"documents": [document.pk]}).status_code == 403
    assert "Copy of invoice" not in queue_page(client)
    document.refresh_from_db()
    assert document.printed_at is None and PaperDocument.objects.count() == 1


# --- Withdrawn: by itself once settled, or by a person ------------------------------------------


def paid(customer, invoice, amount: str, *, actor=None) -> None:
    with frozen(TODAY):
        workspace.payment_record(customer=customer, amount=Decimal(amount), currency="EUR", received_on=TODAY,
                                 allocations=[(invoice, Decimal(amount))], actor=actor, reference="BANK-1")


def statement_posted(client, customer):
    with frozen(TODAY):
        return client.post(url("statement_send", customer), sent_once({"note": ""}))


def test_a_copy_of_an_invoice_paid_before_the_post_leaves_the_queue_and_the_timeline_says_why(
    client, collector, vos
):
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))
    invoice = vos.invoices.get()

    paid(vos, invoice, "1815.00", actor=collector)

    document = PaperDocument.objects.get()
    assert document.withdrawn_at is not None and document.withdrawn_by is None and document.printed_at is None
    assert "Copy of invoice INV-2026-000771" not in queue_page(client)
    event = TimelineEvent.objects.filter(customer=vos, summary__contains="not posted").get()
    assert event.summary == ("Copy of invoice INV-2026-000771 to Lotte Meijer not posted: invoice "
                             "INV-2026-000771 was paid first; withdrawn from the print queue")
    assert event.actor == collector


def test_a_copy_of_an_invoice_paid_in_part_stays_in_the_queue(client, collector, vos):
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))

    paid(vos, vos.invoices.get(), "815.00")

    assert PaperDocument.objects.get().withdrawn_at is None
    assert "Copy of invoice INV-2026-000771" in queue_page(client)


def test_a_copy_of_an_invoice_cancelled_since_leaves_the_queue_with_the_daily_refresh(client, collector, vos):
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))
    vos.invoices.update(status=InvoiceStatus.CANCELLED)

    worklist.worklist_refresh(on=TODAY)

    assert PaperDocument.objects.get().withdrawn_at is not None
    assert summaries(vos)[-1] == ("Copy of invoice INV-2026-000771 to Lotte Meijer not posted: invoice "
                                  "INV-2026-000771 was cancelled first; withdrawn from the print queue")


def test_a_statement_stays_while_the_account_has_something_left_to_pay_and_leaves_once_it_has_not(
    client, collector, vos, make_invoice
):
    second = make_invoice(vos, number="INV-2026-000802", issued=dt.date(2026, 3, 2), due=dt.date(2026, 4, 1),
                          amount="400.00")
    client.force_login(collector)
    statement_posted(client, vos)

    paid(vos, vos.invoices.get(number="INV-2026-000771"), "1815.00")
    assert PaperDocument.objects.get().withdrawn_at is None  # what is left on it is still owed

    paid(vos, second, "400.00")
    document = PaperDocument.objects.get()
    assert document.withdrawn_at is not None
    assert ("Statement of account of 20 Apr 2026 to Lotte Meijer not posted: the account had nothing left to "
            "pay first; withdrawn from the print queue") in summaries(vos)


def test_a_statement_that_asked_for_nothing_stays_in_the_queue(client, collector, vos):
    vos.invoices.update(status=InvoiceStatus.PAID, open_amount=0, settled_on=TODAY)
    client.force_login(collector)
    statement_posted(client, vos)

    worklist.worklist_refresh(on=TODAY)

    document = PaperDocument.objects.get()
    assert not document.asks_payment and document.withdrawn_at is None


def withdraw_url(document, position: str = "") -> str:
    return reverse("collections:paper_withdraw", args=[document.pk]) + (f"?{position}" if position else "")


def test_a_collector_withdraws_a_queued_copy_saying_why_and_the_timeline_records_it(client, collector, vos):
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))
    document = PaperDocument.objects.get()
    assert withdraw_url(document) in client.get(QUEUE).content.decode()

    form = client.get(withdraw_url(document))
    assert form.status_code == 200
    assert "Withdraw the invoice copy to Vos Architects" in form.content.decode()
    response = client.post(withdraw_url(document), {"reason": "She asked for it by e-mail after all."})

    assert response.status_code == 302 and response.url.startswith(QUEUE)
    document.refresh_from_db()
    assert document.withdrawn_by == collector
    assert document.withdrawn_reason == "She asked for it by e-mail after all."
    assert document.printed_at is None
    assert client.get(QUEUE).context["letters"] == []
    event = TimelineEvent.objects.filter(customer=vos).latest("pk")
    assert event.summary == ("Copy of invoice INV-2026-000771 to Lotte Meijer withdrawn from the print queue "
                             f"by {collector.get_full_name() or collector.username}: She asked for it by "
                             "e-mail after all.")
    assert event.actor == collector and event.details["before"] == {"withdrawn_at": None}


def test_withdrawing_with_htmx_swaps_the_queue_in_place(client, collector, vos, make_customer, make_invoice):
    client.force_login(collector)
    with frozen(TODAY):
        letter = make_letter(make_customer(name="Bakker & Zn"), make_invoice)
    statement_posted(client, vos)
    document = PaperDocument.objects.get()

    response = client.post(withdraw_url(document), {"reason": "Sent by hand at the meeting."}, headers=HTMX)

    assert response.status_code == 200
    page = one_line(response.content.decode())
    assert 'id="letters"' in page and "<html" not in page
    assert f'id="letter-{letter.pk}"' in page
    assert "Statement of account of 20 Apr 2026 to Lotte Meijer withdrawn." in page
    document.refresh_from_db()
    assert document.withdrawn_at is not None


def test_a_withdrawal_without_a_reason_is_refused_and_changes_nothing(client, collector, vos):
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))
    document = PaperDocument.objects.get()
    before = TimelineEvent.objects.count()

    response = client.post(withdraw_url(document), {"reason": "  "})

    assert response.status_code == 422
    assert "Say why it is withdrawn." in response.content.decode()
    document.refresh_from_db()
    assert document.withdrawn_at is None and TimelineEvent.objects.count() == before


def test_a_document_posted_or_withdrawn_cannot_be_withdrawn_and_a_withdrawn_one_is_not_posted(
    client, collector, vos
):
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))
    copy_posted(client, vos, to=lotte(vos))
    posted, withdrawn = PaperDocument.objects.order_by("pk")
    client.post(PRINTED, {"documents": [posted.pk]})
    paper.document_withdraw(document=withdrawn, actor=collector, reason="Twice by mistake.")

    assert client.get(withdraw_url(posted)).status_code == 404
    assert client.post(withdraw_url(withdrawn), {"reason": "again"}).status_code == 404
    assert paper.documents_mark_posted(document_ids=[withdrawn.pk], actor=collector) == 0
    withdrawn.refresh_from_db()
    assert withdrawn.printed_at is None and withdrawn.withdrawn_reason == "Twice by mistake."


def test_the_withdrawal_answers_only_get_and_post_and_only_to_whoever_works_the_account(
    client, collector, other_collector, vos
):
    client.force_login(collector)
    copy_posted(client, vos, to=lotte(vos))
    document = PaperDocument.objects.get()

    assert client.put(withdraw_url(document)).status_code == 405
    client.force_login(other_collector)
    assert client.get(withdraw_url(document)).status_code == 403
    assert client.post(withdraw_url(document), {"reason": "not mine"}).status_code == 403
    document.refresh_from_db()
    assert document.withdrawn_at is None


def test_a_copy_of_an_invoice_numbered_with_a_slash_is_kept_as_one_file_of_its_own(client, collector, vos):
    """The print queue's file is named after the invoice: "RE 2026/07" is not a
    folder "copy-RE 2026" holding a file "07.pdf"."""
    vos.invoices.update(number="RE 2026/07")
    client.force_login(collector)

    assert copy_posted(client, vos, to=lotte(vos)).status_code == 302

    name = PaperDocument.objects.get().pdf.name
    assert name.rsplit("/", 1)[-1].startswith("copy-RE_2026-07") and name.endswith(".pdf"), name
