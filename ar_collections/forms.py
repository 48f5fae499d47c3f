"""Forms of the collections pages and of the account page's Dunning card."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Exists, OuterRef, Q

from ar_collections import api, imports
from ar_collections.models import ActionStatus, Channel, DunningAction, MissCause, lists_open_invoice
from ar_collections.paper import documents_in_queue
from arcrm.dates import format_day
from arcrm.forms import one_time_token, something_seen
from arcrm.text import is_one_line, person_name
from customers.models import Segment

User = get_user_model()

# The longest note a decision can carry: skip_reason and waiver_note hold 300.
NOTE_MAX_LENGTH = DunningAction._meta.get_field("skip_reason").max_length


def _note_field(*, required: bool, label: str = "Note") -> forms.CharField:
    return forms.CharField(
        label=label, required=required, max_length=NOTE_MAX_LENGTH, strip=True,
        validators=[something_seen], widget=forms.Textarea(attrs={"rows": 2}),
    )


class _PlainLabels:
    """Labels without the trailing colon, as on the customers' forms."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class StartRunForm(forms.Form):
    """Start today's run. The page names the date it was shown for, so a click
    after midnight on a page from yesterday does not start a run nobody saw."""

    run_date = forms.DateField(widget=forms.HiddenInput)
    # A run sends customer mail at once: the manager confirms the date first,
    # on the page the start button brings.
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, today: dt.date, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.today = today

    def clean_run_date(self) -> dt.date:
        run_date = self.cleaned_data["run_date"]
        if run_date != self.today:
            raise forms.ValidationError(
                f"This page offered a run for {format_day(run_date)}, but today is "
                f"{format_day(self.today)}. Nothing was started; start today's run below."
            )
        return run_date


class CollectorFilterForm(forms.Form):
    """A manager's choice of whose review queue to look at. Bad values are dropped."""

    collector = forms.ChoiceField(label="Collector", required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        owners = User.objects.filter(collected_customers__isnull=False).distinct().order_by(
            "first_name", "last_name", "username"
        )
        self.fields["collector"].choices = [
            ("", "Everyone"),
            *((str(u.pk), person_name(u)) for u in owners),
        ]

    def collector_id(self) -> int | None:
        if self.is_valid() and self.cleaned_data["collector"]:
            return int(self.cleaned_data["collector"])
        return None


class ReviewForm(forms.Form):
    """A collector's word on a reviewed step: send it as planned, or skip it and say why."""

    SEND, SKIP = "send", "skip"

    decision = forms.ChoiceField(choices=[(SEND, "Send"), (SKIP, "Skip")])
    note = _note_field(required=False)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("decision") == self.SKIP and not data.get("note"):
            self.add_error("note", "Say why this step is skipped.")
        return data

    @property
    def send(self) -> bool:
        return self.cleaned_data["decision"] == self.SEND


class ApprovalForm(forms.Form):
    """A manager's decision on a credit hold or switch to C.O.D., always with a note."""

    APPROVE, DECLINE = "approve", "decline"

    decision = forms.ChoiceField(choices=[(APPROVE, "Approve"), (DECLINE, "Decline")])
    note = _note_field(required=True)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["note"].error_messages["required"] = "Write down why you decide this way."


def letters_in_queue():
    """Letters produced and waiting to be printed and posted, while they still
    ask for something: a letter whose every invoice was paid (or credited)
    before it went to the post would demand money already received."""
    return (
        DunningAction.objects.filter(
            channel=Channel.LETTER, status=ActionStatus.DONE, printed_at__isnull=True
        )
        .exclude(letter_pdf="")
        .filter(lists_open_invoice())
    )


def _queue_choices() -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=DunningAction.objects.none(), required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "invalid_choice": "Some of the ticked documents have left the print queue already. "
            "Nothing was marked; look at the queue again.",
            "invalid_pk_value": "That is not a document of the print queue.",
        },
    )


class MarkPrintedForm(forms.Form):
    """The print queue's ticks: dunning letters (`letters`) and invoice copies
    and statements for the post (`documents`), one list on the page."""

    letters = _queue_choices()
    documents = _queue_choices()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["letters"].queryset = letters_in_queue().select_related("customer")
        self.fields["documents"].queryset = documents_in_queue().select_related("customer")

    def clean(self) -> dict:
        data = super().clean()
        if not self.errors and not data.get("letters") and not data.get("documents"):
            self.add_error("letters", "Tick the documents you printed.")
        return data


class LetterWithdrawForm(_PlainLabels, forms.Form):
    reason = _note_field(required=True, label="Why is it withdrawn?")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].error_messages["required"] = "Say why the letter is withdrawn."


class PaperWithdrawForm(_PlainLabels, forms.Form):
    """Why an invoice copy or statement leaves the print queue unposted."""

    reason = _note_field(required=True, label="Why is it withdrawn?")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].error_messages["required"] = "Say why it is withdrawn."


class CauseForm(_PlainLabels, forms.Form):
    cause = forms.ChoiceField(label="Why is the account behind?", choices=MissCause.choices)


class SegmentOverrideForm(_PlainLabels, forms.Form):
    segment = forms.ChoiceField(
        label="Segment",
        required=False,
        choices=[("", "No override: use the computed segment"), *Segment.choices],
    )
    note = _note_field(required=False, label="Why")

    def clean(self) -> dict:
        data = super().clean()
        if data.get("segment") and not data.get("note"):
            self.add_error("note", "Say why the segment is overridden.")
        return data


class ImportForm(_PlainLabels, forms.Form):
    MAX_BYTES = 20 * 1024 * 1024

    kind = forms.ChoiceField(
        label="What the file holds", widget=forms.RadioSelect,
        choices=[("invoices", "Invoices"), ("payments", "Payments"), ("customers", "Customer accounts")],
    )
    file = forms.FileField(
        label="CSV file or Excel workbook",
        help_text="CSV in UTF-8, or .xlsx (its first sheet, or the one named like what it holds); with a "
                  "header row; at most 20 MB.",
        # What the ERP and the bank export: CSV, tab-separated text, Excel.
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.tsv,.txt,.xlsx,.xlsm,text/csv,"
                                               "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}),
    )
    dry_run = forms.BooleanField(label="Only check the file; record nothing", required=False)

    def clean_file(self) -> str | bytes:
        """The file's text, or the workbook's bytes (imports.decode); its name
        goes to cleaned_data["file_name"]."""
        upload = self.cleaned_data["file"]
        self.cleaned_data["file_name"] = upload.name or ""
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError("The file is larger than 20 MB: split it.")
        try:
            return imports.decode(upload.read(), name=upload.name or "")
        except imports.NotText as error:
            raise forms.ValidationError(str(error)) from None


def token_users():
    """The users a token may act as, those api.api_token_user_refusal lets
    through: active, not superusers, and allowed to read accounts, through a
    role or a permission of their own. The list offers no one it would refuse."""
    app_label, codename = api.READ_PERMISSION.split(".")
    reads = {"content_type__app_label": app_label, "codename": codename}
    may_read = (Q(Exists(Permission.objects.filter(group__user=OuterRef("pk"), **reads)))
                | Q(Exists(Permission.objects.filter(user=OuterRef("pk"), **reads))))
    return User.objects.filter(may_read, is_active=True, is_superuser=False).order_by("username")


class ApiTokenForm(_PlainLabels, forms.Form):
    """A token for the ERP API (ar_collections/api.py), acting as one user."""

    # Issued once however often the form is sent (a double click): arcrm.forms.one_time_token.
    submission = one_time_token(required=False)

    name = forms.CharField(label="Name", max_length=100, strip=True,
                           help_text="What will use it, e.g. “ERP”.")
    user = forms.ModelChoiceField(
        label="Acts as", queryset=User.objects.none(),
        help_text="Requests signed with the token may do what this user may, and are recorded as theirs: "
                  "a viewer reads an account's standing (for shipping), a manager or an Integration user "
                  "(the ERP's) also records invoices and payments. Listed: the active users who may read "
                  "accounts, except superusers, who may do anything.",
        error_messages={"invalid_choice": ("Choose a user from the list: an active user who may read "
                                           "accounts, never a superuser.")},
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = token_users()
        self.fields["user"].label_from_instance = lambda user: f"{person_name(user)} ({user.get_username()})"

    def clean_user(self):
        user = self.cleaned_data["user"]
        if refusal := api.api_token_user_refusal(user):
            raise forms.ValidationError(refusal)
        return user

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if not is_one_line(name):
            raise forms.ValidationError("Write the name on one line.")
        return name
