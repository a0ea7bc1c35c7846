import io
import zipfile
from datetime import date, datetime

import pytest

from imports import readers
from imports.readers import ImportFileError, UnreadableRow, open_table
from tests.imports.files import xlsx_bytes, zip_bomb_bytes


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

    assert isinstance(rows[0][1], UnreadableRow)
    assert rows[-1] == (3, ("GOOD", None, None, None, None))


def test_files_that_are_not_tables_are_named_by_their_content():
    assert file_error(b"%PDF-1.7 ...", "offer.pdf") == (
        "“offer.pdf” is not a CSV file or a spreadsheet (it is a PDF document). Upload it as "
        ".csv, .xlsx, .xlsm, .xlsb, .xls or .ods."
    )
    assert "(it is a PNG image)" in file_error(b"\x89PNG\r\n\x1a\n" + b"\0" * 50, "codes.csv")
    assert "is not a CSV file" in file_error(bytes(range(32)) * 10, "codes.csv")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert "(it is a ZIP archive)" in file_error(zipped.getvalue(), "codes.zip")


def test_csv_with_nul_bytes_is_a_csv_with_one_bad_row():
    rows = read(b"Code\nA\x00B\nGOOD\n")

    assert rows == [
        (2, ("A\ufffdB", None, None, None, None)),
        (3, ("GOOD", None, None, None, None)),
    ]


def test_damaged_old_excel_file_is_named_as_xls():
    message = file_error(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "codes.xls")
    assert message == readers.DAMAGED.format(name="codes.xls", format=readers.FORMATS["xls"])


def test_damaged_workbooks_are_named_by_their_format():
    message = file_error(b"PK\x03\x04 this is not really a zip", "codes.xlsx")
    assert message == readers.DAMAGED.format(name="codes.xlsx", format=readers.FORMATS["xlsx"])
    assert "not really an Excel workbook (.xlsx)" in file_error(b"plain text", "codes.xlsx")
    assert "OpenDocument spreadsheet (.ods)" in file_error(b"plain text", "codes.ods")


def test_empty_file_and_header_only():
    assert file_error(b"") == "“codes.csv” is empty."
    assert file_error(b"Code,Issue-start\n") == readers.NO_ROWS.format(name="codes.csv")


def test_no_code_column_names_the_columns_found():
    message = file_error(b"Promo,Start\nAAA,2026-01-01\n")

    assert message == "“codes.csv” has no Code column. Columns found: “Promo”, “Start”."


def test_repeated_column():
    assert "more than once" in file_error(b"Code,code\nA,B\n")


def test_file_over_the_size_limit_says_the_limit(settings):
    settings.IMPORT_MAX_FILE_SIZE = 10

    assert file_error(b"Code\nAAAAAAAAAAAAAAA\n") == (
        "“codes.csv” is 21\xa0bytes; files up to 10\xa0bytes can be imported."
    )


def test_zip_bomb_is_refused(settings):
    settings.IMPORT_MAX_XLSX_UNPACKED = 1024 * 1024

    message = file_error(zip_bomb_bytes(5 * 1024 * 1024), "codes.xlsx")

    assert "possible zip bomb" in message
