import io
import zipfile
from datetime import date, datetime

import pytest
from openpyxl import Workbook

from imports import readers
from imports.readers import ImportFileError, UnreadableRow, open_table
from tests.imports.files import ods_bytes, xlsx_bytes, zip_bomb_bytes


def read(data: bytes, name: str = "codes.csv", pasted: bool = False):
    table = open_table(io.BytesIO(data), name=name, size=len(data), pasted=pasted)
    return list(table.rows)


def file_error(data: bytes, name: str = "codes.csv") -> str:
    with pytest.raises(ImportFileError) as excinfo:
        read(data, name)
    return str(excinfo.value)


@pytest.mark.parametrize(
    "data",
    [
        b"Code,Issue-start\r\nAAA,2026-01-01\r\nBBB,\r\n",
        "\ufeffCode;Issue-start\nAAA;2026-01-01\nBBB;\n".encode(),
        "Code\tIssue-start\nAAA\t2026-01-01\nBBB\t\n".encode("utf-16"),
        "Code\tIssue-start\nAAA\t2026-01-01\nBBB\t\n".encode("utf-16-le"),
        b'"Code","Issue-start"\n"AAA","2026-01-01"\n"BBB",""\n',
        b" CODE ; issue start \nAAA;2026-01-01\n\n;\nBBB;\n",
    ],
    ids=["crlf-comma", "bom-semicolon", "utf16-tab", "utf16-no-bom", "quoted", "loose-header"],
)
def test_real_world_csv_files_read_the_same(data):
    rows = [(cells[0], cells[1] or None, *cells[2:]) for _, cells in read(data)]

    assert rows == [("AAA", "2026-01-01", None, None, None), ("BBB", None, None, None, None)]


def test_csv_columns_map_by_name_in_any_order_and_extras_are_ignored():
    data = b"available_till,Note,CODE,Issue-End\n2026-02-01,x,AAA,2026-01-31\n"
    table = open_table(io.BytesIO(data), name="codes.csv", size=len(data))

    assert list(table.rows) == [(2, ("AAA", None, "2026-01-31", None, "2026-02-01"))]
    assert table.ignored_columns == ["Note"]


def test_windows_1251_csv_from_excel():
    data = "Code;Issue-start\nПРИВЕТ10;\n".encode("cp1251")

    assert read(data) == [(2, ("ПРИВЕТ10", "", None, None, None))]


def test_quoted_field_with_delimiter_and_row_numbers_follow_records():
    data = b'Code,Issue-start\n"A,1",\nB2,\n'

    assert [(n, cells[0]) for n, cells in read(data)] == [(2, "A,1"), (3, "B2")]


def test_xlsx_with_native_dates_and_numeric_codes():
    data = xlsx_bytes(
        [
            ("Code", "Issue-start", "Available-till"),
            ("XL1", datetime(2026, 3, 1, 9, 30), None),
            (12345, None, datetime(2026, 4, 1)),
        ]
    )

    rows = read(data, "codes.xlsx")

    first, second = ([cell or None for cell in cells] for _, cells in rows)
    assert first == ["XL1", datetime(2026, 3, 1, 9, 30), None, None, None]
    assert (second[0], second[4]) == (12345, date(2026, 4, 1))


def test_pasted_list_tolerates_separators_and_blank_lines():
    data = b"code\nAAA\n\nBBB, CCC;DDD\tEEE\n  FFF  \n"

    rows = read(data, "Pasted list", pasted=True)

    assert [(n, cells[0]) for n, cells in rows] == [
        (2, "AAA"),
        (4, "BBB"),
        (4, "CCC"),
        (4, "DDD"),
        (4, "EEE"),
        (5, "FFF"),
    ]


def test_broken_row_is_reported_as_unreadable_not_fatal(monkeypatch):
    monkeypatch.setattr(readers, "_CSV_FIELD_LIMIT", 50)
    data = b"Code\n" + b"A" * 100 + b"\nGOOD\n"

    rows = read(data)

    assert rows == [
        (2, UnreadableRow("This row cannot be read: field larger than field limit (50).")),
        (3, ("GOOD", None, None, None, None)),
    ]


def test_files_that_are_not_tables_are_named_by_their_content():
    assert file_error(b"%PDF-1.7 ...", "offer.pdf") == (
        "“offer.pdf” is not a CSV file or a spreadsheet (it is a PDF document). Upload it as "
        ".csv, .xlsx, .xlsm, .xlsb, .xls or .ods."
    )
    upload_as = "Upload it as .csv, .xlsx, .xlsm, .xlsb, .xls or .ods."
    assert file_error(b"\x89PNG\r\n\x1a\n" + b"\0" * 50, "codes.csv") == (
        f"“codes.csv” is not a CSV file or a spreadsheet (it is a PNG image). {upload_as}"
    )
    assert file_error(bytes(range(32)) * 10, "codes.csv") == (
        f"“codes.csv” is not a CSV file or a spreadsheet. {upload_as}"
    )
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert file_error(zipped.getvalue(), "codes.zip") == (
        f"“codes.zip” is not a CSV file or a spreadsheet (it is a ZIP archive). {upload_as}"
    )


def test_csv_with_nul_bytes_is_a_csv_with_one_bad_row():
    rows = read(b"Code\nA\x00B\nGOOD\n")

    assert rows == [
        (2, ("A\x00B", None, None, None, None)),
        (3, ("GOOD", None, None, None, None)),
    ]


def test_damaged_old_excel_file_is_named_as_xls():
    message = file_error(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "codes.xls")
    assert message == (
        "“codes.xls” cannot be read as an Excel 97-2003 workbook (.xls): it is damaged, or not "
        "really an Excel 97-2003 workbook (.xls)."
    )


def test_damaged_workbooks_are_named_by_their_format():
    xlsx = (
        "“codes.xlsx” cannot be read as an Excel workbook (.xlsx): it is damaged, or not really "
        "an Excel workbook (.xlsx)."
    )
    assert file_error(b"PK\x03\x04 this is not really a zip", "codes.xlsx") == xlsx
    assert file_error(b"plain text", "codes.xlsx") == xlsx
    assert file_error(b"plain text", "codes.ods") == (
        "“codes.ods” cannot be read as an OpenDocument spreadsheet (.ods): it is damaged, or not "
        "really an OpenDocument spreadsheet (.ods)."
    )


def test_empty_file_and_header_only():
    assert file_error(b"") == "“codes.csv” is empty."
    assert file_error(b"Code,Issue-start\n") == (
        "“codes.csv” has a header but no rows of codes under it."
    )


def test_no_code_column_names_the_columns_found():
    message = file_error(b"Promo,Start\nAAA,2026-01-01\n")

    assert message == "“codes.csv” has no Code column. Columns found: “Promo”, “Start”."


def test_repeated_column():
    assert file_error(b"Code,code\nA,B\n") == "“codes.csv” has the column code more than once."


def test_file_over_the_size_limit_says_the_limit(settings):
    settings.IMPORT_MAX_FILE_SIZE = 10

    assert file_error(b"Code\nAAAAAAAAAAAAAAA\n") == (
        "“codes.csv” is 21\xa0bytes; files up to 10\xa0bytes can be imported."
    )


def test_zip_bomb_is_refused(settings):
    settings.IMPORT_MAX_XLSX_UNPACKED = 1024 * 1024

    data = zip_bomb_bytes(5 * 1024 * 1024)

    message = file_error(data, "codes.xlsx")

    ratio = 5 * 1024 * 1024 // len(data)  # about a thousand: zlib's output size varies
    assert message == (
        f"“codes.xlsx” would unpack to 5.0\xa0MB, {ratio:,} times its size: refused as a "
        "possible zip bomb. Save the sheet as CSV instead."
    )


def test_ods_with_notes_sheet_first_reads_the_sheet_with_a_code_column():
    data = ods_bytes({"Notes": [["hello"]], "Codes": [["Code", "Available-till"], ["ODS1", "x"]]})

    table = open_table(io.BytesIO(data), name="codes.ods", size=len(data))

    assert table.file_format == "ods"
    assert list(table.rows) == [(2, ("ODS1", None, None, None, "x"))]
    assert table.notes == ["Codes read from the sheet “Codes”."]


def test_no_code_column_on_any_sheet_names_the_sheets_looked_at():
    data = ods_bytes({"Notes": [["hello"]], "Data": [["Promo", "Start"], ["A", "B"]], "Empty": []})

    assert file_error(data, "codes.ods") == (
        "“codes.ods” has no Code column on any sheet. Sheets looked at: “Notes” (columns: "
        "“hello”); “Data” (columns: “Promo”, “Start”); “Empty” (columns: none)."
    )


def test_xlsx_sheet_with_header_below_blank_rows_and_macro_workbook_name():
    workbook = Workbook()
    workbook.active.title = "Empty"
    sheet = workbook.create_sheet("Codes")
    sheet.append([])
    sheet.append(["Code"])
    sheet.append(["LOW1"])
    output = io.BytesIO()
    workbook.save(output)

    table = open_table(io.BytesIO(output.getvalue()), name="codes.xlsm", size=output.tell())

    assert table.file_format == "xlsm"
    assert list(table.rows) == [(3, ("LOW1", None, None, None, None))]


def test_numeric_codes_are_flagged_and_a_leading_zeros_format_keeps_its_digits():
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Code"])
    sheet.append([42])
    sheet["A2"].number_format = "00000"
    sheet.append([7])
    output = io.BytesIO()
    workbook.save(output)
    data = output.getvalue()

    table = open_table(io.BytesIO(data), name="codes.xlsx", size=len(data))

    assert [cells[0] for _, cells in table.rows] == ["00042", 7]
    assert table.notes == [
        "The Code column holds numbers (in 1 row): Excel may have dropped leading zeros (00042 "
        "becomes 42). If your codes have them, format the column as Text and upload again."
    ]


def test_formula_never_computed_rejects_its_row_instead_of_dropping_it():
    # openpyxl writes formulas without their values, as programs that generate files do.
    data = xlsx_bytes([("Code", "Issue-end"), ('="X"&"1"', None), ("PLAIN", None)])

    rows = read(data, "codes.xlsx")

    assert rows[0] == (
        2,
        UnreadableRow(
            "The Code cell holds a formula whose value was never computed: open the file in "
            "Excel or LibreOffice, save it and upload it again."
        ),
    )
    assert rows[1] == (3, ("PLAIN", None, "", None, None))


def test_password_or_garbage_zip_named_xlsb_is_named_as_xlsb():
    assert file_error(b"PK\x03\x04 broken", "codes.xlsb") == (
        "“codes.xlsb” cannot be read as an Excel binary workbook (.xlsb): it is damaged, or not "
        "really an Excel binary workbook (.xlsb)."
    )
    assert file_error(b"PK\x03\x04 broken", "codes.xlsm") == (
        "“codes.xlsm” cannot be read as an Excel macro-enabled workbook (.xlsm): it is damaged, "
        "or not really an Excel macro-enabled workbook (.xlsm)."
    )


def test_long_and_control_character_headers_are_quoted_visibly_and_short():
    message = file_error(("\x01" + "Y" * 300 + ",B\nA,B\n").encode())

    assert message == "“codes.csv” has no Code column. Columns found: “␁" + "Y" * 59 + "…”, “B”."
