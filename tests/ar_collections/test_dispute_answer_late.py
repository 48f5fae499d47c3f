"""An open dispute whose department has not answered by the day it was due to
says so on the account page: the collector on the phone chases the department,
not the customer."""

from __future__ import annotations

import datetime as dt
import re

from django.urls import reverse
from django.utils import timezone

from ar_collections import workspace
from ar_collections.models import Department, DisputeReason


def commitments(response) -> str:
    page = response.content.decode()
    box = re.search(r'<p class="commitment">Dispute on.*?</p>', page, re.S).group(0)
    return " ".join(re.sub(r"<[^>]+>", " ", box).split())


def open_dispute(customer, collector, make_invoice):
    today = timezone.localdate()
    invoice = make_invoice(customer, issued=today - dt.timedelta(days=60), number="INV-2026-000412")
    Department.objects.create(name="Logistics", email="logistics@example.com",
                              reasons=[DisputeReason.OUR_DELIVERY])
    return workspace.dispute_open(customer=customer, actor=collector, invoice=invoice,
                                  reason=DisputeReason.OUR_DELIVERY, description="A pallet came damaged",
                                  on=today)


def test_a_dispute_whose_answer_is_late_says_since_when_and_whom_to_chase(client, collector, make_customer,
                                                                            make_invoice):
    customer = make_customer(name="Bristol Facilities")
    dispute = open_dispute(customer, collector, make_invoice)
    due = timezone.localdate() - dt.timedelta(days=3)
    type(dispute).objects.filter(pk=dispute.pk).update(answer_due_on=due)
    client.force_login(collector)

    said = commitments(client.get(reverse("customers:detail", args=[customer.pk])))

    assert f"(Logistics: answer late since {due.day} {due:%b}; chase them)" in said


def test_a_dispute_still_within_its_time_says_when_the_answer_is_due(client, collector, make_customer,
                                                                      make_invoice):
    customer = make_customer(name="Bristol Facilities")
    dispute = open_dispute(customer, collector, make_invoice)
    client.force_login(collector)

    said = commitments(client.get(reverse("customers:detail", args=[customer.pk])))

    assert f"(Logistics, answer by {dispute.answer_due_on.day} {dispute.answer_due_on:%b})" in said
    assert "answer late" not in said
