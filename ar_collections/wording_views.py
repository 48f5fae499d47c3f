"""The Wording pages: the words customers get (a notice of each tone, an
invoice copy's and a statement's cover e-mail, in each language), read,
previewed and edited by the managers who own the late-payment policy
(ar_collections/wording.py). Every view checks the policy's permission.

A notice's pages are addressed by its tone, the others' by their kind."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from ar_collections import wording as words
from ar_collections import wording_guide
from ar_collections.models import NO_TONE, WordingKind
from ar_collections.rendering import (
    LETTER_BLOCKS,
    PDF_BLOCKS,
    WORDING_BLOCKS,
    WORDING_PARTS,
    LetterRenderError,
)
from ar_collections.simulator_views import DECIDE_TERMS
from arcrm.forms import WholeNumberField

PAGE = "collections/wording_edit.html"


class WordingForm(forms.Form):
    # The version the text was read from: a save made from an older one is refused.
    based_on = WholeNumberField(widget=forms.HiddenInput, min_value=0)
    subject = forms.CharField(label=words.PART_NAMES["subject"], strip=False,
                              widget=forms.Textarea(attrs={"rows": 3}),
                              error_messages={"required": "Write a subject."})
    text = forms.CharField(label=words.PART_NAMES["text"], strip=False,
                           widget=forms.Textarea(attrs={"rows": 14}),
                           error_messages={"required": "Write the text e-mail."})
    html = forms.CharField(label=words.PART_NAMES["html"], strip=False,
                           widget=forms.Textarea(attrs={"rows": 18}),
                           error_messages={"required": "Write the HTML e-mail."})
    pdf = forms.CharField(label=words.COVER_PART_NAMES["pdf"], strip=False,
                          widget=forms.Textarea(attrs={"rows": 14}),
                          error_messages={"required": "Write the words on the PDF."})

    def parts(self) -> dict[str, str]:
        return {part: self.cleaned_data[part] for part in WORDING_PARTS if part in self.fields}


def _form(wording: words.Wording, data=None, **kwargs) -> WordingForm:
    """The form for this wording's parts (a text-only e-mail has no HTML), labelled as its kind names them."""
    form = WordingForm(data, **kwargs)
    for part in WORDING_PARTS:
        if part in wording.part_names:
            form.fields[part].label = wording.part_names[part]
        else:
            del form.fields[part]
    for part, said in _where_printed(wording).items():
        form.fields[part].help_text = said
    return form


# The document a cover e-mail goes with, as a field's help names it.
PRINTED = {WordingKind.INVOICE_COPY: "invoice copy", WordingKind.STATEMENT: "statement"}


def _blocks_said(names) -> str:
    return ", ".join(f"{{% block {name} %}}" for name in names)


def _where_printed(wording: words.Wording) -> dict[str, str]:
    """Which document each part's blocks are printed in, under its field: the
    same word in the e-mail and on the PDF is said twice, once in each, and a
    manager renaming one should know the other stays."""
    if wording.text_only:
        return {"text": "What mail programs without HTML show."}
    if wording.is_notice:
        return {
            "text": "What mail programs without HTML show: {% block intro %} and {% block request %}.",
            "html": ("The e-mail most customers read, and the printed letter: {% block intro %} and "
                     "{% block request %} in both; " + _blocks_said(LETTER_BLOCKS)
                     + " in the letter alone (the labels at its top, the customer number's atop its later "
                       "pages too, and the closing above the signature)."),
        }
    body = _blocks_said(WORDING_BLOCKS[wording.kind])
    document = PRINTED[wording.kind]
    return {
        "text": f"The cover e-mail, as mail programs without HTML show it: {body}.",
        "html": (f"The cover e-mail most customers read: {body}. The {document} goes with it as a PDF, "
                 "whose words are below."),
        "pdf": (f"Printed on the {document} (the PDF), not in the cover e-mail: "
                f"{_blocks_said(PDF_BLOCKS[wording.kind])}. A heading renamed here is not renamed in the "
                "e-mail, which says its own words above."),
    }


def _wording(tone: int, language: str, kind: str) -> words.Wording:
    found = words.wording_get(kind, tone, language)
    if found is None:
        raise Http404("No document is written in this kind, tone and language.")
    return found


def _initial(wording: words.Wording) -> WordingForm:
    return _form(wording, initial={"based_on": wording.number, **wording.parts()})


def _page(request: HttpRequest, wording: words.Wording, form: WordingForm, *, status: int = 200,
          fragment: str = "", **context) -> HttpResponse:
    context = {"wording": wording, "form": form, "versions": words.history(wording), **context}
    if not fragment:
        # Built from the sample in memory: no query.
        context["placeholders"] = wording_guide.placeholders(wording, on=timezone.localdate())
    return render(request, f"{PAGE}#{fragment}" if fragment else PAGE, context, status=status)


@login_required
@permission_required(DECIDE_TERMS, raise_exception=True)
@require_safe
def wording_list(request: HttpRequest) -> HttpResponse:
    """Every document kind × tone × language, and whether it says the shipped text or an edited one."""
    return render(request, "collections/wording_list.html", {"wordings": words.wordings()})


@login_required
@permission_required(DECIDE_TERMS, raise_exception=True)
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def wording_edit(request: HttpRequest, language: str, tone: int = NO_TONE,
                 kind: str = WordingKind.DUNNING) -> HttpResponse:
    """One tone × language's subject, text and HTML parts, with their history;
    a POST saves them as the newest version, or says what stops it and saves nothing."""
    wording = _wording(tone, language, kind)
    if request.method == "GET":
        return _page(request, wording, _initial(wording))
    form = _form(wording, request.POST)
    if form.is_valid():
        try:
            version = words.wording_save(wording=wording, parts=form.parts(),
                                         based_on=form.cleaned_data["based_on"], actor=request.user)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"{wording.name} wording in {wording.language_name} saved as "
                                      f"version {version.number}: {wording.documents} say it from now on.")
            if not request.htmx:
                return redirect(wording.edit_url)
            wording = _wording(tone, language, kind)
            return _page(request, wording, _initial(wording), fragment="wording-editor", with_messages=True)
    return _page(request, wording, form, status=422, fragment="wording-editor" if request.htmx else "")


@login_required
@permission_required(DECIDE_TERMS, raise_exception=True)
@require_POST
@vary_on_headers("HX-Request")
def wording_preview(request: HttpRequest, language: str, tone: int = NO_TONE,
                 kind: str = WordingKind.DUNNING) -> HttpResponse:
    """The text in the form (saved or not) as a customer would get it by
    e-mail, written for a sample notice; nothing is saved."""
    wording = _wording(tone, language, kind)
    form, parts = _previewed(request, wording)
    context: dict = {"previewing": True}
    status = 422
    if parts is not None:
        context["preview"] = words.preview_email(wording, parts, on=timezone.localdate())
        status = 200
    return _page(request, wording, form, status=status, fragment="wording-preview" if request.htmx else "",
                 **context)


@login_required
@permission_required(DECIDE_TERMS, raise_exception=True)
@require_POST
def wording_letter(request: HttpRequest, language: str, tone: int = NO_TONE,
                 kind: str = WordingKind.DUNNING) -> HttpResponse:
    """The text in the form as the printed letter, a PDF written for the
    sample notice (for a cover e-mail, the sample invoice copy or statement it
    goes with); nothing is saved. Opened in a tab of its own."""
    wording = _wording(tone, language, kind)
    # Asked of the kind alone, before the text is checked (rendered) for nothing.
    if not wording.has_pdf:
        raise Http404("This e-mail goes without a PDF.")
    form, parts = _previewed(request, wording)
    if parts is not None:
        try:
            pdf = words.preview_pdf(wording, parts, on=timezone.localdate())
        except LetterRenderError as error:
            form.add_error(None, f"The PDF cannot be printed: {error}")
        else:
            response = HttpResponse(pdf, content_type="application/pdf")
            name = f"{tone}-{language}" if wording.is_notice else f"{kind}-{language}"
            response["Content-Disposition"] = content_disposition_header(
                as_attachment=False, filename=f"wording-{name}.pdf")
            return response
    return _page(request, wording, form, status=422, previewing=True)


def _previewed(request: HttpRequest, wording: words.Wording) -> tuple[WordingForm, dict[str, str] | None]:
    """The form posted for `wording`, and its parts when the document could be
    sent with them (None, the form saying why, when not)."""
    form = _form(wording, request.POST)
    if not form.is_valid():
        return form, None
    if problems := words.wording_problems(wording, form.parts()):
        form.add_error(None, problems)
        return form, None
    return form, form.parts()


@login_required
@permission_required(DECIDE_TERMS, raise_exception=True)
@require_POST
@vary_on_headers("HX-Request")
def wording_put_back(request: HttpRequest, language: str, tone: int = NO_TONE,
                 kind: str = WordingKind.DUNNING) -> HttpResponse:
    """The documents of this kind × tone × language say the shipped text
    again; the edited versions stay in the history."""
    wording = _wording(tone, language, kind)
    try:
        based_on = int(request.POST.get("based_on", ""))
    except ValueError:
        based_on = -1  # refused below as made from another version
    status = 200
    try:
        words.wording_put_back(wording=wording, based_on=based_on, actor=request.user)
    except ValidationError as error:
        status = 422
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"{wording.name} wording in {wording.language_name}: {wording.documents} "
                                  "say the shipped text again.")
    if not request.htmx:
        return redirect(wording.edit_url)
    wording = _wording(tone, language, kind)
    return _page(request, wording, _initial(wording), fragment="wording-editor", with_messages=True,
                 status=status)
