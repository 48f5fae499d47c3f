"""When a payment plan is agreed (a manager approves it, or a collector or a
manager agrees it at once), the billing contact is e-mailed the agreed
schedule in their language, once, through the outbox, read here from what
a real mail server received."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ar_collections import workspace
from ar_collections.models import (
    CollectionRules,
    MailPurpose,
    OutgoingMail,
    PlanStatus,
    WorkItem,
    WorkKind,
)
from customers.models import EventKind

from .conftest import frozen

TODAY = dt.date(2025, 8, 5)

SCHEDULE_SAYS = {
    "en": {
        "subject": "Your payment plan for account C-4711",
        "lines": ["Dear Anna Clerk,",
                  "We have agreed the following payment plan for the account of Acme Tools, for invoice(s) "
                  "INV-1001, INV-1002 (EUR 1,200.00 in total):",
                  "1. EUR 600.00 by 20 August 2025", "2. EUR 600.00 by 20 September 2025",
                  "As long as each instalment arrives by its date, we will send no reminders about these "
                  "invoices.",
                  "Kind regards,", "carla"],
    },
    "de": {
        "subject": "Ihr Ratenplan für das Kundenkonto C-4711",
        "lines": ["Guten Tag Anna Clerk,",
                  "wir haben für das Konto von Acme Tools folgenden Ratenplan vereinbart, für die Rechnungen "
                  "INV-1001, INV-1002 (insgesamt 1.200,00 EUR):",
                  "1. 600,00 EUR bis zum 20.08.2025", "2. 600,00 EUR bis zum 20.09.2025",
                  "Solange jede Rate bis zu ihrem Datum eingeht, senden wir Ihnen zu diesen Rechnungen keine "
                  "Mahnungen.",
                  "Mit freundlichen Grüßen", "carla"],
    },
    "nl": {
        "subject": "Uw betalingsregeling voor klantrekening C-4711",
        "lines": ["Geachte Anna Clerk,",
                  "Wij hebben de volgende betalingsregeling afgesproken voor de rekening van Acme Tools, "
                  "voor de facturen INV-1001, INV-1002 (in totaal 1.200,00 EUR):",
                  "1. 600,00 EUR uiterlijk 20 augustus 2025", "2. 600,00 EUR uiterlijk 20 september 2025",
                  "Zolang elke termijn uiterlijk op de afgesproken datum binnenkomt, sturen wij u over deze "
                  "facturen geen herinneringen.",
                  "Met vriendelijke groet", "carla"],
    },
    "fr": {
        "subject": "Votre échéancier de paiement pour le compte client C-4711",
        "lines": ["Bonjour Anna Clerk,",
                  "Nous avons convenu de l'échéancier suivant pour le compte Acme Tools, pour les factures "
                  "INV-1001, INV-1002 (1\u202f200,00\u00a0EUR au total)\u00a0:",
                  "1. 600,00\u00a0EUR au plus tard le 20 août 2025",
                  "2. 600,00\u00a0EUR au plus tard le 20 septembre 2025",
                  "Tant que chaque échéance nous parvient à sa date, nous ne vous enverrons aucune relance "
                  "pour ces factures.",
                  "Cordialement", "carla"],
    },
    "es": {
        "subject": "Su plan de pagos para la cuenta de cliente C-4711",
        "lines": ["Estimado/a Anna Clerk:",
                  "Hemos acordado el siguiente plan de pagos para la cuenta de Acme Tools, por las facturas "
                  "INV-1001, INV-1002 (1.200,00 EUR en total):",
                  "1. 600,00 EUR a más tardar el 20 de agosto de 2025",
                  "2. 600,00 EUR a más tardar el 20 de septiembre de 2025",
                  "Mientras cada plazo llegue a más tardar en su fecha, no le enviaremos recordatorios por "
                  "estas facturas.",
                  "Atentamente", "carla"],
    },
    "it": {
        "subject": "Il vostro piano di pagamento per il conto cliente C-4711",
        "lines": ["Gentile Anna Clerk,",
                  "Abbiamo concordato il seguente piano di pagamento per il conto di Acme Tools, per le "
                  "fatture INV-1001, INV-1002 (1.200,00 EUR in totale):",
                  "1. 600,00 EUR entro il 20 agosto 2025", "2. 600,00 EUR entro il 20 settembre 2025",
                  "Finché ogni rata arriva entro la sua data, non vi invieremo solleciti per queste fatture.",
                  "Cordiali saluti", "carla"],
    },
}


@pytest.fixture
def account(make_customer, make_contact, make_invoice, collector):
    collector.email = "carla@arcrm.test"
    collector.save()
    customer = make_customer(name="Acme Tools", account_number="C-4711")
    make_contact(customer, name="Anna Clerk", email="anna@acme.test", is_primary_billing=True)
    for number, amount in [("INV-1001", "500.00"), ("INV-1002", "700.00")]:
        make_invoice(customer, number=number, issued=dt.date(2025, 6, 1), due=dt.date(2025, 7, 1),
                     amount=amount)
    # Every plan waits for a manager.
    CollectionRules.objects.filter(pk=CollectionRules.current().pk).update(plan_approval_above_amount=0)
    return customer


def proposed(account, collector):
    with frozen(TODAY):
        return workspace.plan_propose(
            customer=account, actor=collector, invoices=list(account.invoices.order_by("number")), on=TODAY,
            instalments=[(dt.date(2025, 8, 20), Decimal("600.00")),
                         (dt.date(2025, 9, 20), Decimal("600.00"))],
        )


def decided(plan, manager, capture, *, approve=True):
    with frozen(TODAY), capture(execute=True):
        workspace.plan_decide(plan=plan, manager=manager, approve=approve, note="Fine by me.", on=TODAY)


@pytest.mark.parametrize("language", list(SCHEDULE_SAYS))
def test_an_approved_plan_s_schedule_is_e_mailed_to_the_billing_contact_in_her_language(
    account, collector, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery, language
):
    says = SCHEDULE_SAYS[language]
    account.contacts.update(language=language)
    plan = proposed(account, collector)

    decided(plan, manager, django_capture_on_commit_callbacks)

    (message,) = smtp_server.messages
    assert message["To"] == "Anna Clerk <anna@acme.test>"
    assert message["Reply-To"] == "carla@arcrm.test"
    assert message["Subject"].lstrip() == says["subject"]
    lines = message.get_content().splitlines()
    for line in says["lines"]:
        assert line in lines, (line, lines)


def test_the_schedule_e_mailed_goes_through_the_outbox_and_on_the_plan_s_timeline(
    account, collector, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    plan = proposed(account, collector)

    decided(plan, manager, django_capture_on_commit_callbacks)

    mail = OutgoingMail.objects.get()
    assert (mail.purpose, mail.status, mail.created_by) == (MailPurpose.PLAN_AGREED, "sent", manager)
    sent = account.events.filter(kind=EventKind.PAYMENT_PLAN, summary__startswith="Agreed schedule").get()
    # Not "2 instalments of EUR 1,200.00", which reads as 1,200.00 each.
    assert sent.summary == ("Agreed schedule e-mailed to Anna Clerk <anna@acme.test>: 2 instalments, "
                            "EUR 1,200.00 in all")
    assert sent.actor == manager
    item = WorkItem.objects.get(kind=WorkKind.DECIDED, plan=plan)
    assert item.title.endswith("— the schedule was e-mailed to Anna Clerk; tell the customer if need be")


def test_money_already_received_is_said_to_count_towards_the_first_instalments(
    account, collector, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    plan = proposed(account, collector)
    with frozen(TODAY):
        workspace.payment_record(customer=account, amount=Decimal("250.00"), currency="EUR",
                                 received_on=TODAY,
                                 allocations=[(account.invoices.get(number="INV-1001"), Decimal("250.00"))],
                                 reference="BANK-1")

    decided(plan, manager, django_capture_on_commit_callbacks)

    (message,) = smtp_server.messages
    assert ("We have already received EUR 250.00; it counts towards the first instalments."
            in message.get_content().splitlines())


def test_without_a_billing_e_mail_address_nothing_is_sent_and_the_timeline_and_worklist_say_so(
    account, collector, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    account.contacts.update(email="")
    plan = proposed(account, collector)

    decided(plan, manager, django_capture_on_commit_callbacks)

    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE
    assert smtp_server.messages == []
    assert not OutgoingMail.objects.exists()
    assert account.events.filter(
        kind=EventKind.PAYMENT_PLAN,
        summary="The agreed schedule could not be e-mailed: Anna Clerk has no e-mail address",
    ).exists()
    item = WorkItem.objects.get(kind=WorkKind.DECIDED, plan=plan)
    assert item.title.endswith("— the schedule could not be e-mailed (Anna Clerk has no e-mail address): "
                               "tell the customer")


def test_a_rejected_plan_sends_nothing(
    account, collector, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    plan = proposed(account, collector)

    decided(plan, manager, django_capture_on_commit_callbacks, approve=False)

    assert smtp_server.messages == []
    assert not OutgoingMail.objects.exists()


def agreed_at_once(account, actor, capture):
    with frozen(TODAY), capture(execute=True):
        return workspace.plan_propose(
            customer=account, actor=actor, invoices=list(account.invoices.order_by("number")), on=TODAY,
            instalments=[(dt.date(2025, 8, 20), Decimal("600.00")),
                         (dt.date(2025, 9, 20), Decimal("600.00"))],
        )


def test_a_plan_a_collector_agrees_within_her_limit_e_mails_the_schedule_once(
    account, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    CollectionRules.objects.filter(pk=CollectionRules.current().pk).update(
        plan_approval_above_amount=Decimal("5000.00"))

    plan = agreed_at_once(account, collector, django_capture_on_commit_callbacks)

    assert plan.status == PlanStatus.ACTIVE
    (message,) = smtp_server.messages
    assert message["To"] == "Anna Clerk <anna@acme.test>"
    assert message["Subject"].lstrip() == SCHEDULE_SAYS["en"]["subject"]
    lines = message.get_content().splitlines()
    for line in SCHEDULE_SAYS["en"]["lines"]:
        assert line in lines, (line, lines)
    mail = OutgoingMail.objects.get()
    assert (mail.purpose, mail.status, mail.created_by) == (MailPurpose.PLAN_AGREED, "sent", collector)
    sent = account.events.filter(kind=EventKind.PAYMENT_PLAN, summary__startswith="Agreed schedule").get()
    assert sent.actor == collector


def test_a_plan_a_manager_sets_up_herself_e_mails_the_schedule_once(
    account, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    """Above the collectors' limit (every plan is, here), a manager's own plan
    needs nobody's approval: it is agreed as she sets it up."""
    plan = agreed_at_once(account, manager, django_capture_on_commit_callbacks)

    assert plan.status == PlanStatus.ACTIVE
    assert len(smtp_server.messages) == 1
    assert OutgoingMail.objects.get().purpose == MailPurpose.PLAN_AGREED


def test_a_plan_agreed_at_once_without_a_billing_e_mail_address_says_so_on_the_timeline(
    account, collector, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    CollectionRules.objects.filter(pk=CollectionRules.current().pk).update(
        plan_approval_above_amount=Decimal("5000.00"))
    account.contacts.update(email="")

    agreed_at_once(account, collector, django_capture_on_commit_callbacks)

    assert smtp_server.messages == []
    assert account.events.filter(
        kind=EventKind.PAYMENT_PLAN,
        summary="The agreed schedule could not be e-mailed: Anna Clerk has no e-mail address",
    ).exists()


def test_a_proposal_waiting_for_a_manager_sends_nothing_until_approved(
    account, collector, manager, smtp_server, django_capture_on_commit_callbacks, eager_celery
):
    plan = agreed_at_once(account, collector, django_capture_on_commit_callbacks)
    assert plan.status == PlanStatus.AWAITING_APPROVAL
    assert smtp_server.messages == []

    decided(plan, manager, django_capture_on_commit_callbacks)

    assert len(smtp_server.messages) == 1
    assert OutgoingMail.objects.filter(purpose=MailPurpose.PLAN_AGREED).count() == 1
