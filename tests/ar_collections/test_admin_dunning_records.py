"""What dunning sent and charged is on record: the admin shows the actions,
the invoices they listed and the charges they added, and neither deletes nor
makes them up. An action gone would let its step be sent to the customer
again, and a charge gone would be a fee forgiven without a manager's decision."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.forms.models import model_to_dict
from django.urls import reverse

from ar_collections.models import (
    ChargeKind,
    DunningAction,
    DunningActionInvoice,
    DunningCycle,
    DunningPause,
    DunningRun,
    LateCharge,
    PauseKind,
)
from customers.models import Segment

from .conftest import DUE
from .test_policy_admin import chase, steps_taken

pytestmark = pytest.mark.usefixtures("default_ladders")


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root-admin", password="x"))
    return client


@pytest.fixture
def emailed(make_account):
    """A prompt payer sent the prompt ladder's first step, an e-mail."""
    customer = make_account(Segment.PROMPT)
    chase(DUE + dt.timedelta(days=3))
    assert [s[0] for s in steps_taken(customer)] == [1]
    return customer


def delete_selected(admin_client, model: str, pks) -> None:
    admin_client.post(reverse(f"admin:collections_{model}_changelist"), {
        "action": "delete_selected", "post": "yes", "_selected_action": [str(pk) for pk in pks],
    })


def test_a_customer_is_not_sent_a_step_again_after_its_action_is_deleted_in_the_admin(admin_client, emailed):
    action = DunningAction.objects.get(customer=emailed)

    delete_selected(admin_client, "dunningaction", [action.pk])
    response = admin_client.post(reverse("admin:collections_dunningaction_delete", args=[action.pk]),
                                 {"post": "yes"})
    chase(DUE + dt.timedelta(days=4))

    # The e-mail it recorded, still the only one: not the step sent again in its place.
    sent = DunningAction.objects.filter(customer=emailed).values_list("pk", "step__position")
    assert list(sent) == [(action.pk, 1)]
    assert response.status_code == 403


def test_no_dunning_action_or_listed_invoice_is_made_up_in_the_admin(admin_client, emailed):
    assert admin_client.get(reverse("admin:collections_dunningaction_add")).status_code == 403
    assert admin_client.get(reverse("admin:collections_dunningactioninvoice_add")).status_code == 403


def test_what_a_notice_listed_stays_as_it_listed_it(admin_client, emailed):
    line = DunningActionInvoice.objects.filter(action__customer=emailed).order_by("pk").first()
    url = reverse("admin:collections_dunningactioninvoice_change",
                  args=[line.pk])

    page = admin_client.get(url).content.decode()
    admin_client.post(url, {"action": line.action_id, "invoice": line.invoice_id, "currency": "EUR",
                            "open_amount": "1.00"})
    delete_selected(admin_client, "dunningactioninvoice", [line.pk])

    action_url = reverse("admin:collections_dunningaction_change", args=[line.action_id])
    action_page = admin_client.get(action_url).content.decode()
    assert 'name="open_amount"' not in page and 'readonly">EUR 500.00</div>' in page
    assert "EUR 500.00" in action_page and "lines-0-open_amount" not in action_page
    assert DunningActionInvoice.objects.get(pk=line.pk).open_amount == Decimal("500.00")


def test_a_late_fee_is_neither_deleted_nor_made_up_in_the_admin(admin_client, emailed):
    action = DunningAction.objects.get(customer=emailed)
    fee = LateCharge.objects.create(customer=emailed, action=action, kind=ChargeKind.LATE_FEE, currency="EUR",
                                    amount=Decimal("15.00"), open_amount=Decimal("15.00"))

    delete_selected(admin_client, "latecharge", [fee.pk])
    url = reverse("admin:collections_latecharge_delete", args=[fee.pk])
    response = admin_client.post(url, {"post": "yes"})

    assert LateCharge.objects.filter(pk=fee.pk, open_amount=Decimal("15.00")).exists()
    assert response.status_code == 403
    assert admin_client.get(reverse("admin:collections_latecharge_add")).status_code == 403


def test_a_customer_is_not_sent_a_step_again_after_its_cycle_is_closed_in_the_admin(admin_client, emailed):
    """Each step is taken once per cycle: a cycle closed by hand while the
    invoices are still owed would open a new one, and start the ladder over."""
    cycle = DunningCycle.objects.get(customer=emailed)
    url = reverse("admin:collections_dunningcycle_change", args=[cycle.pk])

    response = admin_client.post(url, {"customer": emailed.pk, "number": cycle.number,
                                       "opened_on": cycle.opened_on, "closed_on": DUE + dt.timedelta(days=3),
                                       "cause": "", "cause_noted_by": "", "invoices_resent_on": ""})
    # The day after the e-mail's pay-by date (Sunday 15 Mar, so Monday 16 Mar).
    chase(DUE + dt.timedelta(days=15))

    # The ladder's second step, the letter, in the same cycle: not the first e-mail over again.
    assert [s[0] for s in steps_taken(emailed)] == [1, 2]
    assert response.status_code == 403
    cycles = DunningCycle.objects.filter(customer=emailed).values_list("number", "closed_on")
    assert list(cycles) == [(1, None)]


def _cycle(customer):
    return DunningCycle.objects.get(customer=customer)


def _run(customer):
    return DunningRun.objects.get()


def _pause(customer):
    """A promise's pause: lifted or deleted alone, dunning would resume under a promise still kept."""
    return DunningPause.objects.create(customer=customer, kind=PauseKind.PROMISE, reason="Pays on Friday",
                                       owner=User.objects.get(username="root-admin"), starts_on=DUE,
                                       ends_on=DUE + dt.timedelta(days=10))


@pytest.mark.parametrize("row", [_cycle, _run, _pause], ids=["cycle", "run", "pause"])
def test_dunning_cycles_runs_and_pauses_are_neither_made_up_edited_nor_deleted_in_the_admin(
    admin_client, emailed, row
):
    obj = row(emailed)
    before = model_to_dict(obj)
    opts = obj._meta
    change_url = reverse(f"admin:collections_{opts.model_name}_change", args=[obj.pk])

    page = admin_client.get(change_url)
    posted = {name: "" if value is None else value for name, value in before.items()}
    changed = admin_client.post(change_url, {**posted, "closed_on": DUE, "planned_through_customer_id": 0,
                                             "status": "running", "ends_on": DUE + dt.timedelta(days=90),
                                             "lifted_at_0": DUE, "lifted_at_1": "08:00"})
    added = admin_client.get(reverse(f"admin:collections_{opts.model_name}_add"))
    deleted = admin_client.post(reverse(f"admin:collections_{opts.model_name}_delete", args=[obj.pk]),
                                {"post": "yes"})

    assert page.status_code == 200
    assert (changed.status_code, added.status_code, deleted.status_code) == (403, 403, 403)
    assert model_to_dict(type(obj).objects.get(pk=obj.pk)) == before
