"""Downloads of codes and of rejected rows, streamed so that a million rows never sit in memory.

django-import-export defines the exported columns and formats their values (CodeResource); its own
export builds the whole table in memory first, so the rows are streamed here instead.
"""

import csv
import tempfile

from django.http import FileResponse, StreamingHttpResponse
from import_export import fields, resources

from .formats import export_value
from .models import Code

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_STREAM_CHUNK = 2000
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def escape_formula(value):
    """Return a text cell that a spreadsheet shows as text, never runs as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


class CodeResource(resources.ModelResource):
    pool = fields.Field(attribute="pool__slug", column_name="Pool ID")
    code = fields.Field(attribute="code", column_name="Code")
    status = fields.Field(attribute="status", column_name="Status")
    issued_to = fields.Field(attribute="issued_to", column_name="Customer")
    issued_at = fields.Field(attribute="issued_at", column_name="Issued at")
    redeemed_at = fields.Field(attribute="redeemed_at", column_name="Redeemed at")
    times_redeemed = fields.Field(attribute="times_redeemed", column_name="Times redeemed")
    issue_start = fields.Field(attribute="issue_start", column_name="Issue-start")
    issue_end = fields.Field(attribute="issue_end", column_name="Issue-end")
    available_from = fields.Field(attribute="available_from", column_name="Available-from")
    available_till = fields.Field(attribute="available_till", column_name="Available-till")

    class Meta:
        model = Code
        fields = Code.LISTED_FIELDS
        export_order = fields

    def dehydrate_status(self, code):
        # The label the screens show ("Issued"), not the stored value ("issued").
        return code.get_status_display()


def code_rows(queryset):
    """Yield the header, then one row per code, formatted by CodeResource."""
    resource = CodeResource()
    yield resource.get_export_headers()
    for code in queryset.select_related("pool").iterator(chunk_size=_STREAM_CHUNK):
        yield [export_value(cell) for cell in resource.export_resource(code)]


class _Echo:
    def write(self, value):
        return value


def csv_response(rows, filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    body = (writer.writerow([escape_formula(cell) for cell in row]) for row in rows)
    # A BOM so that Excel reads the file as UTF-8.
    response = StreamingHttpResponse(
        _prepend("\ufeff", body), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def xlsx_response(rows, filename: str, sheet_title: str = "Codes") -> FileResponse:
    from openpyxl import Workbook

    # write_only keeps memory flat; the workbook is assembled in a temporary file.
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_title)
    for row in rows:
        sheet.append([_xlsx_cell(cell) for cell in row])
    output = tempfile.TemporaryFile()  # noqa: SIM115  (FileResponse closes it)
    workbook.save(output)
    output.seek(0)
    return FileResponse(
        output, as_attachment=True, filename=filename, content_type=XLSX_CONTENT_TYPE
    )


def _xlsx_cell(value):
    # Moments arrive as ISO 8601 text in the project's time zone (pools/formats.py), the same as
    # in the CSV, so that both files read alike.
    if hasattr(value, "tzinfo") and value.tzinfo is not None:
        return export_value(value)
    return escape_formula(value)


def _prepend(first, rest):
    yield first
    yield from rest
