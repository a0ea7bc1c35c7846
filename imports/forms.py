from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from pools.uploads import UploadField

from .cells import shown
from .column_choices import guess_columns
from .encodings import ENCODING_NAMES, encoding_name
from .generation import DEFAULT_ALPHABET, DEFAULT_LENGTH, MAX_LENGTH, MIN_LENGTH
from .headers import FIELDS, TEMPLATE_COLUMNS
from .preview import Preview, Question
from .readers import ACCEPTED_EXTENSIONS, column_letter
from .templates_download import column_title

DATE_ORDERS = [
    ("", gettext_lazy("Find out from the file")),
    ("dmy", gettext_lazy("Day first: 31/01/2026")),
    ("mdy", gettext_lazy("Month first: 01/31/2026 (US)")),
]
DATE_ORDER_HELP = gettext_lazy(
    "Only for dates written with slashes. Dotted dates (31.01.2026) are day first; ISO dates "
    "(2026-01-31) need no choice."
)
DATE_ORDER_LABEL = gettext_lazy("Dates like 03/04/2026")
SAME_COLUMN = gettext_lazy("%(first)s and %(second)s cannot both be read from column %(column)s.")


class UploadForm(forms.Form):
    file = UploadField(
        label=gettext_lazy("Template file"),
        help_text=gettext_lazy(
            "CSV, Excel (XLSX, XLSM, XLSB, XLS) or OpenDocument (ODS) with the columns Code, "
            "Issue-start, Issue-end, Available-from, Available-till. Only Code is required; in a "
            "workbook, the first sheet with a Code column is read."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(ACCEPTED_EXTENSIONS)}),
    )
    date_order = forms.ChoiceField(
        label=DATE_ORDER_LABEL,
        required=False,
        choices=DATE_ORDERS,
        help_text=DATE_ORDER_HELP,
    )


class PreviewForm(forms.Form):
    """The choices for reading a staged file, offered from its preview: the encoding (a CSV's),
    the date order and the columns (when the file's first rows are known)."""

    encoding = forms.ChoiceField(label=gettext_lazy("Encoding"), required=False)
    date_order = forms.ChoiceField(
        label=DATE_ORDER_LABEL,
        required=False,
        choices=DATE_ORDERS,
        help_text=DATE_ORDER_HELP,
    )
    header_row = forms.TypedChoiceField(
        label=gettext_lazy("Header"), coerce=int, empty_value=0, required=False
    )

    def __init__(self, *args, preview: Preview, upload, **kwargs):
        super().__init__(*args, **kwargs)
        self.preview = preview
        if preview.file_format == "csv" or preview.question == Question.ENCODING:
            self.fields["encoding"].choices = self._encodings(preview)
            self.initial["encoding"] = upload.encoding or preview.encoding
        else:
            del self.fields["encoding"]
        self.initial["date_order"] = upload.date_order
        self.has_columns = preview.question != Question.ENCODING
        if not self.has_columns:
            del self.fields["header_row"]
            return
        self.fields["header_row"].choices = [("0", _("None: every row holds codes"))] + [
            (
                str(number),
                _("Row %(number)s: %(cells)s") % {"number": number, "cells": _row_text(row)},
            )
            for number, row in zip(preview.first_row_numbers, preview.first_rows, strict=False)
        ]
        columns = [("", "—")] + [
            (str(index), _column_text(index, preview)) for index in range(preview.width)
        ]
        header_row, chosen = guess_columns(preview)
        self.initial["header_row"] = header_row
        for position, (name, label) in enumerate(zip(FIELDS, TEMPLATE_COLUMNS, strict=True)):
            self.fields[name] = forms.TypedChoiceField(
                label=column_title(label),
                choices=columns,
                coerce=int,
                empty_value=None,
                required=position == 0,
            )
            self.initial[name] = chosen[position]

    @staticmethod
    def _encodings(preview: Preview) -> list[tuple[str, str]]:
        if preview.readings:
            return [
                (
                    codec,
                    f"{encoding_name(codec)}: " + ", ".join(shown(c, limit=30) for c in codes[:3]),
                )
                for codec, codes in preview.readings
            ]
        used = preview.encoding
        return [(used, _("%(encoding)s (as read)") % {"encoding": preview.encoding_label})] + [
            (codec, name) for codec, name in ENCODING_NAMES.items() if codec != used
        ]

    def column_fields(self):
        return [self[name] for name in FIELDS if name in self.fields]

    def clean(self):
        data = super().clean()
        if not self.has_columns:
            return data
        taken: dict[int, str] = {}
        for name, label in zip(FIELDS, TEMPLATE_COLUMNS, strict=True):
            index = data.get(name)
            if index is None:
                continue
            if index in taken:
                raise forms.ValidationError(
                    SAME_COLUMN
                    % {
                        "first": column_title(taken[index]),
                        "second": column_title(label),
                        "column": column_letter(index),
                    }
                )
            taken[index] = label
        return data

    def choices(self) -> dict:
        """The choices as upload_choose takes them."""
        data = self.cleaned_data
        chosen = {"encoding": data.get("encoding", ""), "date_order": data["date_order"]}
        if self.has_columns:
            chosen["header_row"] = data["header_row"] or 0
            chosen["columns"] = tuple(data.get(name) for name in FIELDS)
        return chosen


def _quoted(text: str) -> str:
    """A value from the file as the reader's language quotes it (“x” in English, «x» in Russian)."""
    return pgettext("quoting a value", "“%(value)s”") % {"value": text}


def _row_text(row) -> str:
    cells = [_quoted(shown(cell, limit=20)) for cell in row if cell][:4]
    return ", ".join(cells) + (" …" if len([c for c in row if c]) > 4 else "") or _("(blank)")


def _column_text(index: int, preview: Preview) -> str:
    first = preview.first_rows[0] if preview.first_rows else []
    value = first[index] if index < len(first) else ""
    return column_letter(index) + (f" — {_quoted(shown(value, limit=30))}" if value else "")


class PasteForm(forms.Form):
    text = forms.CharField(
        label=gettext_lazy("Codes"),
        widget=forms.Textarea(attrs={"rows": 8, "cols": 40, "spellcheck": "false"}),
        help_text=gettext_lazy(
            "One code per line; commas, semicolons and tabs also separate codes."
        ),
    )


class GenerateForm(forms.Form):
    count = forms.IntegerField(label=gettext_lazy("How many"), min_value=1, max_value=20_000_000)
    length = forms.IntegerField(
        label=gettext_lazy("Length"),
        min_value=MIN_LENGTH,
        max_value=MAX_LENGTH,
        initial=DEFAULT_LENGTH,
    )
    alphabet = forms.CharField(
        label=gettext_lazy("Alphabet"),
        initial=DEFAULT_ALPHABET,
        max_length=256,
        strip=False,
        help_text=gettext_lazy(
            "Characters to draw from. The default leaves out look-alikes such as O/0 and I/1."
        ),
    )
    prefix = forms.CharField(
        label=gettext_lazy("Prefix"),
        required=False,
        max_length=20,
        help_text=gettext_lazy("Optional: the same start for every code."),
    )

    def clean_prefix(self):
        prefix = self.cleaned_data["prefix"].strip()
        if prefix and (not prefix.isprintable() or " " in prefix):
            raise forms.ValidationError(
                _("The prefix may contain only characters that can be typed, no spaces.")
            )
        return prefix


class AssignForm(forms.Form):
    file = UploadField(
        label=gettext_lazy("Customer list"),
        help_text=gettext_lazy(
            "CSV or Excel with a customer id column (Customer, Customer id or Id); other columns, "
            "such as e-mail or name, are kept. Each customer gets one code; the list comes back "
            "with a Code column added."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(ACCEPTED_EXTENSIONS)}),
    )


class ReleaseForm(forms.Form):
    customers = forms.CharField(
        label=gettext_lazy("Customers whose message was not delivered"),
        widget=forms.Textarea(attrs={"rows": 6, "cols": 40, "spellcheck": "false"}),
        help_text=gettext_lazy(
            "One customer id per line: their codes from this assignment go back to stock "
            "(codes already redeemed stay)."
        ),
    )
