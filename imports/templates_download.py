"""The manual code import template, as CSV and XLSX, in the manager's language: its headers are
names the readers accept in either language (headers.SYNONYMS)."""

import io
from datetime import timedelta

from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pools.exports import XLSX_CONTENT_TYPE, FormulaSafeWriter, csv_response

from .headers import TEMPLATE_COLUMN_NAMES
from .readers import TEMPLATE_COLUMNS
from .validation import TEMPLATE_EXAMPLE_CODE


def template_example_row() -> tuple:
    """Return the template's example row, its dates from today on: a template filled in from
    its example keeps dates that have not passed yet. The example code itself is skipped on
    import, with a note in the report (validation.TEMPLATE_EXAMPLE)."""
    today = timezone.localdate()
    return (
        TEMPLATE_EXAMPLE_CODE,
        f"{today:%Y-%m-%d} 00:00",
        f"{today + timedelta(days=30):%Y-%m-%d}",
        f"{today:%d.%m.%Y}",
        f"{today + timedelta(days=60):%d.%m.%Y}",
    )


# The template's columns as a manager reads them (headers.TEMPLATE_COLUMN_NAMES: each a name the
# readers accept for that column, so a template downloaded in Russian, filled in and uploaded,
# is read as one in English).
COLUMN_TITLES = dict(zip(TEMPLATE_COLUMNS, TEMPLATE_COLUMN_NAMES, strict=True))


def column_title(name: str) -> str:
    """Return a template column's name in the current language."""
    return str(COLUMN_TITLES.get(name, name))


def template_columns() -> list[str]:
    """Return the template's header in the current language."""
    return [column_title(name) for name in TEMPLATE_COLUMNS]


TEMPLATE_NOTES = (
    gettext_lazy(
        "Only the Code column is required; delete the other columns if a third-party system "
        "redeems the codes."
    ),
    gettext_lazy("Issue-start and Issue-end: when the code may be issued to a customer."),
    gettext_lazy("Available-from and Available-till: when the customer can redeem it."),
    gettext_lazy(
        "Dates: YYYY-MM-DD HH:MM (ISO 8601), DD.MM.YYYY HH:MM, or with slashes DD/MM/YYYY or "
        "MM/DD/YYYY (the file or the upload form says which); the time may be left out. "
        "A date alone in Issue-end or Available-till means the end of that day. Times without a "
        "zone are read in the project's time zone."
    ),
    gettext_lazy("Replace the example row with your codes, one per row (left in, it is skipped)."),
)


def template_notes() -> list[str]:
    return [str(note) for note in TEMPLATE_NOTES]


def template_csv():
    return csv_response([template_columns(), template_example_row()], "promo-code-template.csv")


def template_xlsx():
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = _("Codes")
    # Built here for its styles (a write-only workbook has none), through the one escaping of
    # every file served back, as xlsx_write's rows are.
    sheet.append(FormulaSafeWriter.cells(template_columns()))
    sheet.append(FormulaSafeWriter.cells(template_example_row()))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for column in "ABCDE":
        sheet.column_dimensions[column].width = 20
    # Codes as text, so that Excel keeps leading zeros.
    sheet.column_dimensions["A"].number_format = "@"
    notes = workbook.create_sheet(_("How to fill in"))
    for note in template_notes():
        notes.append(FormulaSafeWriter.cells([note]))
    notes.column_dimensions["A"].width = 120
    output = io.BytesIO()
    workbook.save(output)
    response = HttpResponse(output.getvalue(), content_type=XLSX_CONTENT_TYPE)
    response["Content-Disposition"] = 'attachment; filename="promo-code-template.xlsx"'
    return response
