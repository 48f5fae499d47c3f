"""A JSON API for the ERP: an account's standing ("may we ship?"), and the
ERP's invoices, payments and customer accounts as the CSV import takes them.

Every request carries `Authorization: Bearer <token>`, a token a manager
issues for one user on Collections › API tokens (or `manage.py
api_token_create`), and may do what that user may:
every role reads an account's standing, only managers and the Integration
group's users (the import permission) record invoices, payments and accounts. A missing, unknown or revoked
token is 401, a right the user lacks 403, both in JSON; an address that sent
too many wrong tokens within a minute is answered 429 (arcrm/throttle.py).

Rows are checked and recorded by ar_collections/imports.py, the rules of a
CSV file's rows: a request is taken whole or not at all (422 with each row's
problems, nothing written), and the same request again changes nothing,
which its counts say. A request that fails on an error nobody foresaw is
500 in JSON, nothing recorded; one too large (its body, or its rows) is 413.
Each request that is not a dry run, recorded, refused (too large as well) or
failed, is kept on the imports page beside the uploaded files, as its token's
user's, naming the token.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import secrets
from collections import defaultdict
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from ar_collections.delivery import credits_held
from ar_collections.imports import (
    CUSTOMERS,
    INVOICES,
    PAYMENTS,
    ImportReport,
    invoice_rows_import,
    payment_rows_import,
    read_json_rows,
)
from ar_collections.models import (
    ApiToken,
    ChargeKind,
    DisputeStatus,
    ImportOrigin,
    ImportStatus,
    Invoice,
    LateCharge,
    Payment,
    PaymentReversal,
    ReceivablesImport,
    ReversalReason,
    bank_id_key,
)
from ar_collections.numbers import with_disputed_part
from ar_collections.workspace import payment_reverse, reversal_owed_again, reversal_said
from arcrm import throttle
from arcrm.money import ZERO, format_money, quantize
from customers.imports import customer_rows_import
from customers.models import Customer, TermsType

# Rows per request: a request is one transaction holding its accounts' locks,
# and the ERP's client waits for its answer; a larger batch comes in several
# requests (or as a CSV file, which a worker imports).
MAX_ROWS = 1_000
# The body's size at most, told by its Content-Length before it is read:
# 1,000 rows of a payment's fields with long references come to well under
# this, and it is below Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), which
# would refuse a larger body with a bare 400.
MAX_BODY_BYTES = 2 * 1024 * 1024
IMPORT_PERMISSION = "collections.import_receivables"
READ_PERMISSION = "customers.view_customer"
TOKEN_PREFIX = "arcrm_"
LAST_USED_EVERY = dt.timedelta(minutes=1)

log = logging.getLogger(__name__)


# --- tokens -----------------------------------------------------------------------------------


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, user: AbstractBaseUser, name: str, actor: AbstractBaseUser | None = None
                     ) -> tuple[ApiToken, str]:
    """A new token acting as `user`, and its secret: shown to whoever made it
    this once, kept only as its hash."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 32 random bytes
    token = ApiToken.objects.create(name=name, user=user, secret_hash=_hash(secret), created_by=actor)
    return token, secret


def api_token_user_refusal(user: AbstractBaseUser) -> str | None:
    """Why a token may not act as `user`, or None. A token acts as its user,
    with all their rights, for as long as it lives: a viewer's reads an
    account's standing (the shipping desk), a manager's also records the
    ERP's invoices and payments. Never a superuser's, who may do anything:
    that token would outlive any care taken with what the system signing
    with it is allowed. A user who may not even read accounts could do
    nothing with one."""
    if not user.is_active:
        return "Choose an active user: that one is unknown or no longer active."
    if user.is_superuser:
        return (f"A token acts as its user, and {user.get_username()} is a superuser, who may do "
                "anything: choose a user with only the rights the system that signs with it needs.")
    if not user.has_perm(READ_PERMISSION):
        return (f"{user.get_username()} may not read accounts, so a token acting as them could do nothing "
                "here: choose a viewer (to read an account's standing) or a manager (to record invoices "
                "and payments too).")
    return None


def api_token_revoke(*, token: ApiToken, actor: AbstractBaseUser | None) -> bool:
    """Refuse the token from now on; False if it was revoked already (the
    first revocation's who and when stay)."""
    return bool(ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True)
                .update(revoked_at=timezone.now(), revoked_by=actor))


def _token(request: HttpRequest) -> ApiToken | None:
    """The token the request is signed with, its user loaded; None without a
    token in use, logged (_refusal_log). Never the session's user: a page open
    in a browser must not lend its cookie to a request another site makes it
    send."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        _refusal_log(request, "no token")
        return None
    # Found by its hash's index, revoked or not, so that the log can say which
    # revoked token a system still signs with; the secret itself is never logged.
    token = ApiToken.objects.select_related("user").filter(secret_hash=_hash(secret.strip())).first()
    if token is None:
        _refusal_log(request, "an unknown token")
        return None
    if token.revoked_at is not None or not token.user.is_active:
        why = "is revoked" if token.revoked_at is not None else "acts as a user no longer active"
        _refusal_log(request, f"token {token.pk} ({token.name}) {why}")
        return None
    # When it was last used, to the minute: an ERP sending a request a second
    # would otherwise write the token's row at every one of them.
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at <= now - LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def _refusal_log(request: HttpRequest, why: str) -> None:
    """One warning per refused request, with the address it came from: a run
    of them is someone guessing tokens, or a system left with an old one.
    The address is the client's as the sign-in counts it (behind the
    trusted proxy, the one it forwarded)."""
    log.warning("API request refused: %s, from %s (%s %s)", why, throttle.client_address(request),
                request.method, request.path)


def _token_refusal(request: HttpRequest) -> JsonResponse:
    """401 for a request without a token in use, counted per address; once an
    address sent API_TOKEN_FAILURES_PER_MINUTE of them, 429 to its requests
    without a good token for a minute. Looked at only after the token: a good
    one is never held up, and guessing a token of 32 random bytes is hopeless
    anyway; what this stops is a client hammering the API with a wrong one."""
    address = throttle.client_address(request)
    if seconds := throttle.refused_for(throttle.API_ADDRESS, address):
        response = _error(429, f"Too many requests with a wrong token from this address; try again in "
                               f"{seconds} seconds.")
        response["Retry-After"] = str(seconds)
        return response
    if throttle.failure_count(throttle.API_ADDRESS, address,
                              throttle.Limit(settings.API_TOKEN_FAILURES_PER_MINUTE, 60)):
        log.warning("API requests with a wrong token from %s answered 429 for a minute after %d of them",
                    address, settings.API_TOKEN_FAILURES_PER_MINUTE)
    return _error(401, "Send a valid API token: Authorization: Bearer <token> "
                       "(issued on Collections › API tokens).")


def _error(status: int, message: str, **more) -> JsonResponse:
    response = JsonResponse({"error": message, **more}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="arcrm"'
    return response


def _only(method: str):
    """Django's require_GET/require_POST, answering in JSON as the rest of the
    API does: an ERP's client reads JSON, not an empty page."""
    def decorate(view):
        @functools.wraps(view)
        def checked(request: HttpRequest, *args, **kwargs) -> JsonResponse:
            if request.method != method:
                response = _error(405, f"Use {method} here, not {request.method}.")
                response["Allow"] = method
                return response
            return view(request, *args, **kwargs)
        return checked
    return decorate


@csrf_exempt  # reads no cookie either: a POST to a wrong address is told so, not refused for CSRF
def not_found(request: HttpRequest) -> JsonResponse:
    return _error(404, f"The API has no address {request.path}; it has customers/<account number>/, "
                       "invoices/, payments/ and payments/reversals/.")


def _json_read(request: HttpRequest) -> tuple[object, JsonResponse | None]:
    """The request's body as JSON, or the 400 that says why it cannot be read."""
    try:
        return json.loads(request.body), None
    except (UnicodeDecodeError, ValueError) as error:
        return None, _error(400, f"The body is not JSON: {error}.")
    except RecursionError:
        # Arrays or objects nested some thousand deep exhaust the parser's
        # stack: no request of ours nests more than three, so it is not ours.
        return None, _error(400, "The body is not JSON: it nests deeper than any request here does.")


def _refused(request: HttpRequest, permission: str) -> tuple[ApiToken | None, JsonResponse | None]:
    """(the token, None), or (None, the 401 or 403 to answer with)."""
    token = _token(request)
    if token is None:
        return None, _token_refusal(request)
    if not token.user.has_perm(permission):
        _refusal_log(request, f"user {token.user.get_username()} of token {token.pk} may not do this: "
                              f"{permission}")
        return None, _error(403, f"User {token.user.get_username()} may not do this.")
    return token, None


# --- an account's standing ------------------------------------------------------------------


def _amount(amount, currency: str) -> str:
    """An amount as a string in its currency's places ("1250.00", JPY "6000"):
    sums come back with ten places on SQLite, and a string keeps every cent."""
    return str(quantize(amount, currency))


def _account(token: ApiToken, account_number: str) -> tuple[Customer | None, JsonResponse | None]:
    """The account of that number, in any case ("c-1001" finds C-1001), or
    the 404 to answer with. The number as written first, which the unique
    index on it serves (0.05 ms over 100,000 accounts); only when that finds
    nothing, in any case: UPPER(account_number) = UPPER(%s), which the
    search's trigram index on UPPER(account_number) serves (customers
    migration 0008, a bitmap scan of about 12 ms over 100,000 accounts),
    rather than every request paying that. Two accounts whose numbers differ
    only in case, and neither written so, are not guessed between."""
    if "\x00" in account_number:
        # An address may carry one (%00); the database refuses it in text.
        return None, _error(404, f"There is no account {account_number!r}: an account number holds no NUL "
                                 "character.")
    accounts = Customer.objects.visible_to(token.user)
    customer = accounts.filter(account_number=account_number).first()
    if customer is not None:
        return customer, None
    found = list(accounts.filter(account_number__iexact=account_number).order_by("pk")[:2])
    if len(found) == 1:
        return found[0], None
    if found:
        return None, _error(404, f"There is no account {account_number}; "
                                 f"{' and '.join(c.account_number for c in found)} differ from it only in "
                                 "case: give the number exactly.")
    return None, _error(404, f"There is no account {account_number}.")


# No CSRF to check: the view reads no cookie (see _token).
@csrf_exempt
@_only("GET")
def customer_standing(request: HttpRequest, account_number: str) -> JsonResponse:
    """What the ERP and shipping need to know before the next order: what is
    open and overdue per currency (amounts as strings, never floats; what is
    overdue under open dispute apart), the
    credit limit and terms, a hold, the segment, open disputes, the late
    fees and interest owed and the credit on account per currency; whether an
    order may ship, on credit or only against payment, and if not, why."""
    token, refused = _refused(request, READ_PERMISSION)
    if refused:
        return refused
    customer, refused = _account(token, account_number)
    if refused:
        return refused
    today = timezone.localdate()
    # Overdue less what an open dispute holds back, said apart, as the account
    # page and the customer list say it: dunning does not chase that part, and
    # an invoice wholly under dispute is not among the overdue invoices.
    overdue = Q(due_date__lt=today)
    totals = (with_disputed_part(Invoice.objects.open().filter(customer=customer))
              .values("currency").order_by("currency")
              .annotate(open=Sum("open_amount"), overdue=Sum("undisputed", filter=overdue),
                        disputed=Sum("disputed_part", filter=overdue),
                        overdue_invoices=Count("pk", filter=overdue & Q(undisputed__gt=0))))
    disputes = customer.disputes.filter(status=DisputeStatus.OPEN).count()
    # As the account page's "Credit on account": one computation for both.
    held = credits_held(customer)
    charges: dict[str, dict[str, Decimal]] = defaultdict(lambda: {kind: ZERO for kind in ChargeKind.values})
    for row in (LateCharge.objects.filter(customer=customer).standing().values("currency", "kind")
                .order_by("currency").annotate(owed=Sum("open_amount"))):
        charges[row["currency"]][row["kind"]] = row["owed"]
    # The limit is in the account's currency, and there is no rate here to
    # turn what it owes in another currency into that one: each currency is
    # judged on its own, never summed. In the account's currency what is open
    # is compared with the limit; in any other the limit grants no credit (as
    # a limit of 0 grants none), so anything open there is over it.
    over = [(t["currency"], t["open"]) for t in totals
            if t["open"] > (customer.credit_limit_amount if t["currency"] == customer.currency else ZERO)]
    over_limit = bool(over)
    # C.O.D. and prepayment ship, but only against the money: such an order
    # adds nothing to what the account owes, so its limit does not stop it.
    on_credit = customer.terms_type == TermsType.STANDARD
    reasons = []
    if customer.on_credit_hold:
        reasons.append("On credit hold.")
    if over_limit and on_credit:
        limit = format_money(customer.credit_limit_amount, customer.currency)
        for currency, owed in over:
            if currency == customer.currency:
                reasons.append(f"Over its credit limit: {format_money(owed, currency)} open against a limit "
                               f"of {limit}.")
            else:
                reasons.append(f"{format_money(owed, currency)} open on credit in {currency}, which its "
                               f"credit limit of {limit} does not cover (no rate to count it against it).")
    return JsonResponse({
        "account_number": customer.account_number,
        "name": customer.name,
        "as_of": today.isoformat(),
        "open": {t["currency"]: _amount(t["open"], t["currency"]) for t in totals},
        "overdue": {t["currency"]: _amount(t["overdue"], t["currency"]) for t in totals if t["overdue"]},
        "overdue_under_dispute": {t["currency"]: _amount(t["disputed"], t["currency"])
                                  for t in totals if t["disputed"]},
        "overdue_invoices": sum(t["overdue_invoices"] for t in totals),
        "credit_limit": {"currency": customer.currency, "amount": str(customer.credit_limit_amount)},
        "on_credit_hold": customer.on_credit_hold,
        "payment_terms": {"type": customer.terms_type, "label": customer.get_terms_type_display(),
                          "days": customer.payment_terms_days},
        "segment": customer.segment,
        "open_disputes": disputes,
        # The late fees and interest charged and not yet paid (nor waived):
        # owed as well as the invoices, kept apart from them.
        "charges": {currency: {"late_fees": _amount(kinds[ChargeKind.LATE_FEE], currency),
                               "interest": _amount(kinds[ChargeKind.INTEREST], currency),
                               "total": _amount(sum(kinds.values()), currency)}
                    for currency, kinds in charges.items()},
        # Credit notes not yet set against an invoice and money kept on
        # account: the customer may deduct them from what it owes.
        "credit_on_account": {currency: _amount(total, currency) for currency, total, _ in held},
        "may_ship": not reasons,
        "ship_terms": "on_credit" if on_credit else "against_payment",
        "over_credit_limit": over_limit,
        "may_not_ship_because": " ".join(reasons) or None,
    })


# --- invoices and payments ------------------------------------------------------------------


# No CSRF to check: the view reads no cookie, so a session cannot record
# anything here; only the bearer token authenticates (see _token).
@csrf_exempt
@_only("POST")
def invoices_post(request: HttpRequest) -> JsonResponse:
    """The ERP's invoices: new ones recorded, those recorded before left as
    they were or given the due date or PO reference the ERP changed since,
    and those a row gives a cancelled_on (and cancel_reason) cancelled
    (workspace.invoice_cancel)."""
    return _rows_post(request, INVOICES)


@csrf_exempt  # as invoices_post
@_only("POST")
def payments_post(request: HttpRequest) -> JsonResponse:
    """The money the bank received, each payment to the invoices it names."""
    return _rows_post(request, PAYMENTS)


@csrf_exempt  # as invoices_post
@_only("POST")
def customers_post(request: HttpRequest) -> JsonResponse:
    """The ERP's customer accounts: new ones opened, known ones given the
    values the rows change, as the account card would take them."""
    return _rows_post(request, CUSTOMERS)


REVERSAL_KEYS = {"payment", "bank_reference", "reason", "note", "reversed_on"}


@csrf_exempt  # as invoices_post
@_only("POST")
def payment_reversal_post(request: HttpRequest) -> JsonResponse:
    """A payment the bank took back, named by its id or by the bank's id of
    the statement entry (compared as the import compares it), reversed as on
    the account page (workspace.payment_reverse): one object, taken whole or
    refused with a 4xx that changes nothing. Reversed already: 409, with
    when and by whom, so an ERP sending it again learns it is done."""
    token, refused = _refused(request, IMPORT_PERMISSION)
    if refused:
        return refused
    data, unread = _json_read(request)
    if unread:
        return unread
    if not isinstance(data, dict):
        return _error(422, 'Send an object: {"bank_reference": "...", "reason": "bounced_cheque"}.')
    if unknown := sorted(set(data) - REVERSAL_KEYS):
        return _error(422, f"Unknown key{'s' * (len(unknown) > 1)} {', '.join(unknown)}: send "
                           f"{', '.join(sorted(REVERSAL_KEYS))}.")
    payment, problem = _payment_named(token, data)
    if problem:
        return problem
    reason, note = data.get("reason"), data.get("note", "")
    if not isinstance(reason, str) or reason not in ReversalReason.values:
        return _error(422, f"reason is one of {', '.join(ReversalReason.values)}.")
    if not isinstance(note, str):
        return _error(422, "note is text.")
    try:
        on = dt.date.fromisoformat(data["reversed_on"]) if "reversed_on" in data else timezone.localdate()
    except (TypeError, ValueError):
        return _error(422, "reversed_on is a day written YYYY-MM-DD.")
    try:
        reversal = payment_reverse(payment=payment, actor=token.user, reason=reason, note=note, on=on)
    except ValidationError as error:
        # Reversed already (payment_reverse says when and by whom): 409.
        status = 409 if PaymentReversal.objects.filter(payment=payment).exists() else 422
        return _error(status, " ".join(error.messages))
    return JsonResponse({
        "payment": payment.pk,
        "bank_reference": payment.bank_reference,
        "reversed_on": reversal.reversed_on.isoformat(),
        "reason": reversal.reason,
        "reopened": reversal_owed_again(reversal),
        "summary": reversal_said(reversal),
    })


def _payment_named(token: ApiToken, data: dict) -> tuple[Payment | None, JsonResponse | None]:
    """The payment the request names, among those of the accounts its user may see, or the 4xx."""
    named = [key for key in ("payment", "bank_reference") if key in data]
    if len(named) != 1:
        return None, _error(422, "Name the payment by one of payment (its id) or bank_reference.")
    payments = Payment.objects.filter(customer__in=Customer.objects.visible_to(token.user))
    if named == ["payment"]:
        if type(data["payment"]) is not int:
            return None, _error(422, "payment is the payment's id, a whole number.")
        payment = payments.filter(pk=data["payment"]).first()
    else:
        # A NUL (\u0000) no bank id holds, and the database refuses in text.
        if (not isinstance(data["bank_reference"], str) or not bank_id_key(data["bank_reference"])
                or "\x00" in data["bank_reference"]):
            return None, _error(422, "bank_reference is the bank's id of the statement entry, as text.")
        # The payment standing with that id, else the newest recalled with it.
        payment = payments.filter(bank_key=bank_id_key(data["bank_reference"])).order_by(
            "bank_id_released", "-pk").first()
    if payment is None:
        return None, _error(404, f"There is no payment {data[named[0]]} recorded.")
    return payment, None


def _rows_post(request: HttpRequest, kind: str) -> JsonResponse:
    token, refused = _refused(request, IMPORT_PERMISSION)
    if refused:
        return refused
    try:
        size = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        size = 0  # Django's own check still bounds what it reads
    if size > MAX_BODY_BYTES:
        message = f"The body is over {MAX_BODY_BYTES:,} bytes: send at most {MAX_ROWS:,} rows a request."
        # Recorded unread, whether or not it was a dry run: the managers see
        # the ERP sending what it may not, not what was in it.
        _unapplied_record(token=token, kind=kind, status=ImportStatus.REFUSED, body="", rows=0,
                          summary=f"Nothing imported: too large (a body of {size:,} bytes, at most "
                                  f"{MAX_BODY_BYTES:,}).", errors=[message])
        return _error(413, message)
    data, unread = _json_read(request)
    if unread:
        return unread
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        return _error(422, 'Send an object with the rows in a list: {"rows": [{...}, ...]}.')
    if not isinstance(dry_run := data.get("dry_run", False), bool):
        return _error(422, "dry_run is true or false.")
    if unknown := sorted(set(data) - {"rows", "dry_run"}):
        return _error(422, f"Unknown key{'s' * (len(unknown) > 1)} {', '.join(unknown)}: "
                           "send rows (and dry_run).")
    # As read: JSON may come in UTF-16 or UTF-32 as well as UTF-8.
    body = json.dumps(data, ensure_ascii=False)
    if (count := len(data["rows"])) > MAX_ROWS:
        message = f"{count:,} rows: send at most {MAX_ROWS:,} rows a request, nothing was recorded."
        if not dry_run:
            _unapplied_record(token=token, kind=kind, status=ImportStatus.REFUSED, body=body, rows=count,
                              summary=f"Nothing imported: too large ({count:,} rows, at most {MAX_ROWS:,} a "
                                      "request).", errors=[message])
        return _error(413, message)
    report = ImportReport(kind, dry_run=dry_run, unit="row")
    try:
        rows = read_json_rows(data["rows"], report)
        # The request's record on the imports page commits with what it recorded:
        # none without the other. A refused one is recorded as a refused file is.
        with transaction.atomic():
            if kind == INVOICES:
                invoice_rows_import(rows, report=report, actor=token.user)
            elif kind == PAYMENTS:
                payment_rows_import(rows, report=report, actor=token.user)
            else:
                customer_rows_import(rows, report=report, actor=token.user)
            if not dry_run:
                _request_record(token=token, kind=kind, body=body, report=report)
    except Exception as error:
        # An error nobody foresaw: the transaction above is rolled back, so
        # the ERP is told in JSON that nothing was recorded (Django's own 500
        # is an HTML page its client cannot read), and the managers see the
        # request failed on the imports page, recorded now, outside it.
        log.exception("API request for %s with token %s failed", kind, token.pk)
        if not dry_run:
            try:
                _failure_record(token=token, kind=kind, rows=count, body=body, error=error)
            except Exception:  # the database itself may be what failed: the ERP is still answered
                log.exception("API request for %s with token %s not recorded as failed", kind, token.pk)
        return _error(500, "The request failed on an internal error: nothing was recorded. Send it again "
                           "later; if it fails again, tell the team that runs arcrm.")
    if not report.ok:
        by_row: dict[int, list[str]] = defaultdict(list)
        for row, text in sorted(report.problems):
            by_row[row].append(text)
        return _error(422, report.summary(), problems=[
            {"row": row or None, "messages": texts} for row, texts in by_row.items()
        ])
    # Invoices: which the request cancelled, and which it found cancelled
    # already (an ERP sending a cancellation again learns it is done).
    cancellations = ({"cancelled": report.cancelled, "already_cancelled": report.already_cancelled}
                     if kind == INVOICES else {})
    return JsonResponse({
        "dry_run": report.dry_run,
        "rows": report.rows,
        "recorded": report.created,
        "already_there": report.already,
        "updated": report.updated,
        **cancellations,
        "summary": report.summary(),
    })


def _request_record(*, token: ApiToken, kind: str, body: str, report: ImportReport) -> ReceivablesImport:
    """The request on the imports page beside the uploaded files: who sent it
    (the token's user, by which token), its rows and what came of them."""
    now = timezone.now()
    return ReceivablesImport.objects.create(
        kind=kind, origin=ImportOrigin.API, api_token=token, text=body, created_by=token.user,
        status=ImportStatus.DONE if report.ok else ImportStatus.REFUSED,
        rows=report.rows, created=report.created, already=report.already, updated=report.updated,
        errors=report.errors, summary=report.summary(), started_at=now, finished_at=now,
    )


def _failure_record(*, token: ApiToken, kind: str, rows: int, body: str, error: Exception
                    ) -> ReceivablesImport:
    """A request that failed on an error, on the imports page as failed,
    nothing of its rows applied; its error named as a failed file's is."""
    return _unapplied_record(token=token, kind=kind, status=ImportStatus.FAILED, body=body, rows=rows,
                             summary="Failed: internal error; nothing was recorded.",
                             errors=[f"The request stopped on an error: {type(error).__name__}: {error}"])


def _unapplied_record(*, token: ApiToken, kind: str, status: str, body: str, rows: int, summary: str,
                      errors: list[str]) -> ReceivablesImport:
    """A request none of whose rows were looked at, on the imports page with why."""
    now = timezone.now()
    return ReceivablesImport.objects.create(
        kind=kind, origin=ImportOrigin.API, api_token=token, text=body, created_by=token.user,
        status=status, rows=rows, summary=summary, errors=errors, started_at=now, finished_at=now,
    )


app_name = "api"
urlpatterns = [
    path("customers/<str:account_number>/", customer_standing, name="customer_standing"),
    path("customers/", customers_post, name="customers"),
    path("invoices/", invoices_post, name="invoices"),
    path("payments/", payments_post, name="payments"),
    path("payments/reversals/", payment_reversal_post, name="payment_reversals"),
    re_path(r"", not_found),
]
