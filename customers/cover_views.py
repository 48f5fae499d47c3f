"""The cover page: who is away, who covers for them, and a form to say so.

A manager records and ends anyone's absence; a collector their own. The
page and its htmx fragment come from one view (the `cover` partial holds
the list and the form); without htmx a POST redirects back to the page.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from ar_collections.services import carried_out_once
from arcrm.dates import format_day
from arcrm.htmx import form_autofocus, wants_fragment
from arcrm.text import person_name
from customers import cover, services
from customers.forms import CoverForm
from customers.models import CollectorAbsence

TEMPLATE = "customers/cover.html"


def _require_cover(request: HttpRequest) -> None:
    """Those who work accounts (collectors and managers) see and record cover;
    read-only colleagues have no list for anyone to cover."""
    if not request.user.has_perm("customers.change_customer"):
        raise PermissionDenied("Your role does not work accounts, and has no cover to arrange.")


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def cover_page(request: HttpRequest) -> HttpResponse:
    _require_cover(request)
    # Who is away and when, as chosen so far: the menu of stand-ins asks for
    # itself again with them (see _render) and offers only those free then.
    chosen = {name: request.GET[name] for name in ("user", "starts_on", "ends_on", "stand_in")
              if name in request.GET}
    form = CoverForm(request.POST if request.method == "POST" else None, user=request.user, initial=chosen)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        away = data.get("user") or request.user
        try:
            absence = carried_out_once(form, lambda: services.absence_record(
                user=away, stand_in=data["stand_in"], starts_on=data["starts_on"], ends_on=data["ends_on"],
                note=data["note"], actor=request.user))
        except ValidationError as error:
            _add_errors(form, error)
        else:
            said = (f"{person_name(away)} away {format_day(absence.starts_on)}–"
                    f"{format_day(absence.ends_on)}: {person_name(absence.stand_in)} covers.")
            messages.success(request, said)
            if not request.htmx:
                return redirect("collections:cover")
            form = CoverForm(user=request.user)
    return _render(request, form)


@login_required
@require_POST
def cover_end(request: HttpRequest, pk: int) -> HttpResponse:
    _require_cover(request)
    absence = get_object_or_404(CollectorAbsence.objects.select_related("user"), pk=pk)
    # Checked here as well as in the service: a collector sees the others'
    # absences on the page, and must not end them by posting the form by hand.
    if absence.user_id != request.user.pk and not request.user.has_perm("customers.act_on_any_customer"):
        raise PermissionDenied("Only a manager or the absent person ends an absence.")
    status = 200
    try:
        ended = services.absence_end(absence=absence, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        status = 422
    else:
        if ended.cancelled:
            messages.success(request, f"The absence of {person_name(absence.user)} is called off.")
        else:
            messages.success(request, f"{person_name(absence.user)} is back: their list and accounts are "
                                      "theirs again.")
    if not request.htmx:
        return redirect("collections:cover")
    return _render(request, CoverForm(user=request.user), status=status)


def _render(request: HttpRequest, form: CoverForm, *, status: int | None = None) -> HttpResponse:
    today = timezone.localdate()
    absences = (CollectorAbsence.objects.not_over(on=today)
                .select_related("user", "stand_in", "recorded_by").order_by("starts_on", "pk"))
    manager = request.user.has_perm("customers.act_on_any_customer")
    absences = list(absences)
    for absence in absences:
        # A stand-in away too hands the work on: the page names everyone it
        # passes through, on the absence's first day still to come, so nobody
        # takes the first stand-in for the one doing the work.
        people = cover.chain(absences, absence=absence, on=max(absence.starts_on, today))
        absence.chain = " → ".join(person_name(p) for p in people) if len(people) > 2 else ""
    if form.is_bound:
        form_autofocus(form, first=False)
    # Choosing who is away or the days brings a fresh menu of stand-ins, so it
    # never offers the person away nor anyone away then; only the menu is
    # swapped, so what the user is typing keeps the keyboard. A change made
    # while the last one is asked about asks again (htmx would drop it).
    # Only those fields go along (the menu's own choice with them): not the
    # whole form, whose CSRF token has no business in a URL.
    chosen_by = [f"#{form[name].auto_id}" for name in ("user", "starts_on", "ends_on") if name in form.fields]
    form.fields["stand_in"].widget.attrs.update({
        "hx-get": reverse("collections:cover"),
        "hx-trigger": ", ".join(f"change from:{c}" for c in chosen_by), "hx-include": ", ".join(chosen_by),
        "hx-select": f"#{form['stand_in'].auto_id}", "hx-target": "this", "hx-swap": "outerHTML",
        "hx-sync": "this:replace",
    })
    context = {
        "form": form, "today": today, "manager": manager,
        "current": [a for a in absences if a.starts_on <= today],
        "coming": [a for a in absences if a.starts_on > today],
    }
    template = TEMPLATE + "#cover" if wants_fragment(request) else TEMPLATE
    if status is None:
        status = 422 if form.is_bound and form.errors else 200
    return render(request, template, context, status=status)


def _add_errors(form: CoverForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error.messages)
