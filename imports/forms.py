from django import forms

from .generation import DEFAULT_ALPHABET, DEFAULT_LENGTH, MAX_LENGTH, MIN_LENGTH
from .readers import ACCEPTED_EXTENSIONS


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Template file",
        help_text="CSV, Excel (XLSX, XLSM, XLSB, XLS) or OpenDocument (ODS) with the columns "
        "Code, Issue-start, Issue-end, Available-from, Available-till. Only Code is required; "
        "in a workbook, the first sheet with a Code column is read.",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(ACCEPTED_EXTENSIONS)}),
    )
    date_order = forms.ChoiceField(
        label="Dates like 03/04/2026",
        required=False,
        choices=[
            ("", "Find out from the file"),
            ("dmy", "Day first: 31/01/2026"),
            ("mdy", "Month first: 01/31/2026 (US)"),
        ],
        help_text="Only for dates written with slashes. Dotted dates (31.01.2026) are day "
        "first; ISO dates (2026-01-31) need no choice.",
    )


class PasteForm(forms.Form):
    text = forms.CharField(
        label="Codes",
        widget=forms.Textarea(attrs={"rows": 8, "cols": 40, "spellcheck": "false"}),
        help_text="One code per line; commas, semicolons and tabs also separate codes.",
    )


class GenerateForm(forms.Form):
    count = forms.IntegerField(label="How many", min_value=1, max_value=20_000_000)
    length = forms.IntegerField(min_value=MIN_LENGTH, max_value=MAX_LENGTH, initial=DEFAULT_LENGTH)
    alphabet = forms.CharField(
        initial=DEFAULT_ALPHABET,
        max_length=256,
        strip=False,
        help_text="Characters to draw from. The default leaves out look-alikes such as O/0 "
        "and I/1.",
    )
    prefix = forms.CharField(
        required=False, max_length=20, help_text="Optional fixed start of every code."
    )

    def clean_prefix(self):
        prefix = self.cleaned_data["prefix"].strip()
        if prefix and (not prefix.isprintable() or " " in prefix):
            raise forms.ValidationError("The prefix may contain only characters that can be typed.")
        return prefix


class AssignForm(forms.Form):
    file = forms.FileField(
        label="Customer list",
        help_text="CSV or Excel with a customer id column (Customer, Customer id or Id); other "
        "columns, such as e-mail or name, are kept. Each customer gets one code; the list comes "
        "back with a Code column added.",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(ACCEPTED_EXTENSIONS)}),
    )


class ReleaseForm(forms.Form):
    customers = forms.CharField(
        label="Customers whose message was not delivered",
        widget=forms.Textarea(attrs={"rows": 6, "cols": 40, "spellcheck": "false"}),
        help_text="One customer id per line: their codes from this assignment go back to stock "
        "(codes already redeemed stay).",
    )
