"""A copy of an invoice sent by post gives a day to pay by in writing, as an
e-mailed one does: the ladder's next step waits for it, whether the copy is
still in the print queue or posted. A copy withdrawn before the post told the
customer nothing and holds nothing back."""

import datetime as dt

import pytest

from ar_collections import paper, workspace
from ar_collections.dunning import next_step
from ar_collections.models import OutgoingMail, PaperDocument
from customers.models import InvoiceDelivery

from .conftest import DUE, frozen

COPIED_ON = DUE + dt.timedelta(days=12)


@pytest.fixture
def copied_by_post(make_account, plan_and_deliver, collector):
    """Prompt ladder: the friendly e-mail on day 3 (pay by day 14: ten days are
    a Sunday), the next step from day 15. Anna takes paper invoices: on day 12
    a collector sends her a copy of one invoice by post, asking for payment
    within 7 days, Saturday 21 Mar, so by Monday 23 Mar."""
    customer = make_account(invoice_delivery=InvoiceDelivery.PAPER)
    plan_and_deliver(DUE + dt.timedelta(days=3))
    with frozen(COPIED_ON):
        workspace.invoice_copy_send(customer=customer, invoice=customer.invoices.order_by("number").first(),
                                    contact=customer.contacts.get(), actor=collector, on=COPIED_ON)
    assert not OutgoingMail.objects.filter(customer=customer, invoice__isnull=False).exists()
    return customer


@pytest.mark.parametrize("posted", [False, True], ids=["in the print queue", "posted"])
def test_the_next_step_waits_for_the_pay_by_date_a_copy_by_post_gave(
    copied_by_post, plan_and_deliver, collector, posted, pdf_text
):
    document = PaperDocument.objects.get(customer=copied_by_post)
    assert "transfer the open amount by 23 Mar 2026" in " ".join(pdf_text(document.pdf.read()).split())
    if posted:
        with frozen(COPIED_ON + dt.timedelta(days=1)):
            paper.documents_mark_posted(document_ids=[document.pk], actor=collector)
    with frozen(COPIED_ON):
        assert next_step(copied_by_post, on=COPIED_ON).due_on == DUE + dt.timedelta(days=22)

    for day in (15, 21):
        plan_and_deliver(DUE + dt.timedelta(days=day))
        assert not copied_by_post.dunning_actions.filter(step__position=2).exists()
    plan_and_deliver(DUE + dt.timedelta(days=22))
    assert copied_by_post.dunning_actions.get(step__position=2).planned_on == DUE + dt.timedelta(days=22)


def test_a_copy_withdrawn_before_the_post_holds_nothing_back(copied_by_post, plan_and_deliver, collector):
    document = PaperDocument.objects.get(customer=copied_by_post)
    with frozen(COPIED_ON):
        paper.document_withdraw(document=document, actor=collector, reason="Handed over at the meeting.")
        assert next_step(copied_by_post, on=DUE + dt.timedelta(days=15)).due_on == DUE + dt.timedelta(days=15)

    plan_and_deliver(DUE + dt.timedelta(days=15))
    assert copied_by_post.dunning_actions.get(step__position=2).planned_on == DUE + dt.timedelta(days=15)
