from django import forms

from arcrm.htmx import form_autofocus


class _WriteOffLikeForm(forms.Form):
    """A form whose only field in error can be one nobody sees, as the write-off's amount."""

    amount = forms.DecimalField(widget=forms.HiddenInput)
    reason = forms.CharField()


def test_the_keyboard_goes_to_the_first_field_in_error():
    form = _WriteOffLikeForm({"amount": "10.00", "reason": ""})
    form_autofocus(form, first=True)
    assert "autofocus" in str(form["reason"])
    assert "autofocus" not in str(form["amount"])


def test_a_hidden_field_in_error_gives_the_keyboard_to_the_first_field_one_can_see():
    form = _WriteOffLikeForm({"amount": "", "reason": "Insolvent"})
    form_autofocus(form, first=False)
    assert "autofocus" not in str(form["amount"])
    assert "autofocus" in str(form["reason"])


def test_an_empty_form_never_puts_the_keyboard_on_a_hidden_first_field():
    form = _WriteOffLikeForm()
    form_autofocus(form, first=True)
    assert "autofocus" not in str(form["amount"])
    assert "autofocus" in str(form["reason"])


def test_without_first_an_unbound_form_puts_the_keyboard_nowhere():
    form = _WriteOffLikeForm()
    form_autofocus(form, first=False)
    assert "autofocus" not in str(form)
