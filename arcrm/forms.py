"""Form fields shared by the apps' forms."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db import models

from arcrm import throttle
from arcrm.money import LARGEST_AMOUNT, MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS
from arcrm.roles import integration_account_refusal, is_integration_account
from arcrm.text import hidden_characters, nothing_seen, other_digits

log = logging.getLogger("arcrm.signin")


def something_seen(value: str) -> None:
    """Refuses a text made only of characters no one sees. The fields strip
    white space only: zero-width and format characters would pass as a note,
    a reason or a description that says nothing."""
    if value and nothing_seen(value):
        raise ValidationError(
            # Each character named once: a row of zero-width spaces is one kind.
            f"This holds only characters no one sees ({', '.join(dict.fromkeys(hidden_characters(value)))}): "
            "write it out.")


def nothing_hidden(value: str) -> None:
    """Refuses a text with a character no one sees in it ("BANK-1" and a
    zero-width space): it reads as the text without it, yet is another, so a
    reference would not be found again nor tell one payment from another."""
    if value and (hidden := hidden_characters(value)):
        raise ValidationError(f"This holds a character no one sees ({', '.join(dict.fromkeys(hidden))}): "
                              "type it as you read it.", code="hidden")


class VisibleText:
    """A form whose every text says something: a value of only zero-width or
    format characters is refused on its field (something_seen), whichever
    text field it is in."""

    def clean(self):
        cleaned = super().clean()
        for name, value in list(cleaned.items()):
            if isinstance(value, str):
                try:
                    something_seen(value)
                except ValidationError as error:
                    self.add_error(name, error)
        return cleaned


def digits_check(text: str, *, like: str) -> None:
    """Refuse a number written with digits other than 0-9 (full-width "３０",
    Arabic-Indic "٣٠"): Python reads them as 30, so a number nobody wrote in
    the digits the pages show would be recorded. `like` says how to write it."""
    if digits := other_digits(text):
        raise ValidationError(f"“{text.strip()}” is written with digits other than 0-9 "
                              f"({', '.join(digits)}): write {like}.", code="digits")


def plain_amount_check(text: str) -> None:
    """Refuse an amount in scientific notation ("1e3", "2.5E2") or in digits
    other than 0-9 (full-width "１０００"): Python's Decimal reads both, so a
    slip on the keyboard would record EUR 1,000.00 where nobody wrote 1000;
    money is written in digits 0-9 with a point."""
    digits_check(text, like="the amount like 1000.00")
    if "e" in text.lower():
        raise ValidationError(f"Write the amount in digits with a point for the cents, e.g. 1000.00: "
                              f"“{text.strip()}” is not written so.", code="exponent")


class MoneyField(forms.DecimalField):
    """An amount of money as the forms take it: digits and a point, up to the
    places money is kept with (arcrm.money), never in scientific notation."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_digits", MONEY_MAX_DIGITS)
        kwargs.setdefault("decimal_places", MONEY_DECIMAL_PLACES)
        super().__init__(**kwargs)

    def validate(self, value) -> None:
        super().validate(value)
        # Said before Django's count of digits ("no more than 14 digits in
        # total" for 1234567890123.00), as the imports say it.
        if (value is not None and value.is_finite() and self.max_digits == MONEY_MAX_DIGITS
                and abs(value) > Decimal(LARGEST_AMOUNT)):
            raise ValidationError(f"This is more than an amount may be ({LARGEST_AMOUNT} at most).",
                                  code="max_whole_digits")

    def to_python(self, value) -> Decimal | None:
        if isinstance(value, str):
            plain_amount_check(value)
        return super().to_python(value)


class WholeNumberField(forms.IntegerField):
    """A whole number as the forms take it: in digits 0-9, as amounts are
    (MoneyField). Every whole number the product takes is one: the model
    forms' through `written_plainly`, the admin's through arcrm.admin_columns."""

    def to_python(self, value) -> int | None:
        if isinstance(value, str):
            digits_check(value, like="the number like 30")
        return super().to_python(value)


def written_plainly(db_field: models.Field, **kwargs) -> forms.Field | None:
    """The formfield_callback of the product's model forms: a model's whole
    number is taken with WholeNumberField, as the admin takes it."""
    if isinstance(db_field, models.IntegerField) and not db_field.choices:
        kwargs.setdefault("form_class", WholeNumberField)
    return db_field.formfield(**kwargs)


# Said when a form comes back without its one-time token: opened before the
# token was rendered in it, or not through the page at all.
FORM_OUT_OF_DATE = "This form is out of date: nothing was done. Open it again from the account page."


def one_time_token(*, required: bool = True) -> forms.UUIDField:
    """The one-time token of a form that records or sends something: a new
    one each time the form opens, taken in the transaction that carries the
    form out (ar_collections.services.submission_record), so the same form
    sent twice (a double click, a retry, the page posted again) is carried
    out once. A form that sends something to the customer requires it; one
    that only records something takes a form without it (a page drawn before
    it had one) as it always did."""
    return forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4, required=required,
                           validators=[_not_taken],
                           error_messages={"required": FORM_OUT_OF_DATE, "invalid": FORM_OUT_OF_DATE})


def _not_taken(token: uuid.UUID) -> None:
    """Said first, before what the form's other fields would say now (the
    invoice it disputed is under dispute since: by this very form). Two sent
    at once both pass here; the token's unique index refuses the second."""
    from ar_collections.services import submission_taken_check

    submission_taken_check(token=token)


class ThrottledSignIn:
    """A sign-in form that refuses, for SIGN_IN_LOCK_MINUTES, a user name
    from one address after SIGN_IN_FAILURES_PER_USER_AND_ADDRESS wrong
    passwords from it, and an address after SIGN_IN_FAILURES_PER_ADDRESS
    (whatever the names), before any password is checked. Counted by the name
    as typed, known or not: the answer never says whether it exists. Whoever
    guesses a user's password locks out only their own address, never the
    user. Signing in clears the name's count from that address."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = throttle.client_address(self.request) if self.request is not None else "?"
        pair = throttle.sign_in_pair(username, address)
        if seconds := throttle.refused_for(throttle.SIGN_IN_PAIR, pair):
            log.warning("Sign-in refused for %s from %s: too many failures",
                        throttle.as_typed(username), address)
            raise ValidationError(f"Too many failed sign-ins for this user; try again in "
                                  f"{throttle.minutes(seconds)} or ask a manager.", code="throttled")
        if seconds := throttle.refused_for(throttle.SIGN_IN_ADDRESS, address):
            log.warning("Sign-in refused for %s from %s: too many failures from the address",
                        throttle.as_typed(username), address)
            raise ValidationError(f"Too many failed sign-ins from your address; try again in "
                                  f"{throttle.minutes(seconds)}.", code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError as error:
            # Only a password that did not authenticate is a failure: the
            # admin refuses a right password of a user without admin access
            # with the same code, and that must not lock the user out.
            if error.code == "invalid_login" and self.user_cache is None:
                self._failure_count(username, address, pair)
            raise
        throttle.forget(throttle.SIGN_IN_PAIR, pair, forgiving=True)
        return cleaned

    def _failure_count(self, username: str, address: str, pair: str) -> None:
        log.warning("Sign-in failed for %s from %s", throttle.as_typed(username), address)
        period = settings.SIGN_IN_LOCK_MINUTES * 60
        if throttle.failure_count(throttle.SIGN_IN_PAIR, pair,
                                  throttle.Limit(settings.SIGN_IN_FAILURES_PER_USER_AND_ADDRESS, period)):
            log.warning("Sign-ins for %s from %s refused for %d minutes after %d failures",
                        throttle.as_typed(username), address, settings.SIGN_IN_LOCK_MINUTES,
                        settings.SIGN_IN_FAILURES_PER_USER_AND_ADDRESS)
        if throttle.failure_count(throttle.SIGN_IN_ADDRESS, address,
                                  throttle.Limit(settings.SIGN_IN_FAILURES_PER_ADDRESS, period)):
            log.warning("Sign-ins from %s refused for %d minutes after %d failures", address,
                        settings.SIGN_IN_LOCK_MINUTES, settings.SIGN_IN_FAILURES_PER_ADDRESS)


class AdminSignInForm(ThrottledSignIn, AdminAuthenticationForm):
    """The admin's own sign-in page, counted with the login page's."""


class SignInForm(ThrottledSignIn, AuthenticationForm):
    """The login page's form: a wrong user name or password reads as it always
    did, and the ERP's user (the Integration group), even once given a
    password, is told it signs in nowhere rather than let in."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Your user name and password did not match. Please try again.",
    }

    def confirm_login_allowed(self, user) -> None:
        super().confirm_login_allowed(user)
        if is_integration_account(user):
            raise ValidationError(integration_account_refusal(user), code="integration_account")
