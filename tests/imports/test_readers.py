import codecs
import io
import zipfile
from datetime import date, datetime

import pytest
from openpyxl import Workbook

from imports import customer_lists, readers
from imports.headers import ColumnMapping
from imports.readers import BLANK_ROW, ImportFileError, UnreadableRow, detect_format, open_table
from tests.imports.files import ods_bytes, xlsx_bytes, zip_bomb_bytes

MB = 1024 * 1024


def read(data: bytes, name: str = "codes.csv", pasted: bool = False):
    """The rows read, blank ones left out (test_blank_rows_are_read_as_such counts them)."""
    table = open_table(io.BytesIO(data), name=name, size=len(data), pasted=pasted)
    return [row for row in table.rows if row[1] is not BLANK_ROW]


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


def test_a_cell_of_any_length_is_read_for_validation_to_judge():
    data = b"Code,Note\n" + b"A" * (3 * MB) + b",x\nGOOD," + b"n" * (2 * MB) + b"\n"

    rows = read(data)

    assert rows == [
        (2, ("A" * (3 * MB), None, None, None, None)),
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
    assert file_error(b"plain text", "codes.XLS") == (
        "“codes.XLS” cannot be read as an Excel 97-2003 workbook (.xls): it is damaged, or not "
        "really an Excel 97-2003 workbook (.xls)."
    )
    assert file_error(b"plain text", "codes.ods") == (
        "“codes.ods” cannot be read as an OpenDocument spreadsheet (.ods): it is damaged, or not "
        "really an OpenDocument spreadsheet (.ods)."
    )


def test_empty_file_and_header_only():
    assert file_error(b"") == "“codes.csv” is empty."
    assert file_error(b"Code,Issue-start\n") == (
        "“codes.csv” has a header but no rows of codes under it."
    )


NO_CODE_COLUMN = (
    "“{name}” has no column of codes: no column is named Code (or Promo code, Coupon, Код, "
    "Промокод). Columns found: {found}. Choose the columns on the upload page, or rename the one "
    "to read."
)


def test_no_code_column_names_the_columns_found():
    message = file_error(b"Name,Start\nAAA,2026-01-01\n")

    assert message == NO_CODE_COLUMN.format(name="codes.csv", found="“Name”, “Start”")


def test_two_columns_of_codes_are_for_the_manager_to_choose_between():
    with pytest.raises(readers.ColumnsUnclear) as excinfo:
        read(b"Code,Promo code\nA,B\n")

    assert str(excinfo.value) == (
        "“codes.csv” has more than one column for Code: “Code”, “Promo code”. Choose the columns "
        "on the upload page, or rename the one to read."
    )
    assert excinfo.value.first_rows == [["Code", "Promo code"], ["A", "B"]]


def test_file_over_the_size_limit_says_the_limit(settings):
    settings.IMPORT_MAX_FILE_SIZE = 20

    assert read(b"Code\nAAAAAAAAAAAAAA\n") == [(2, ("AAAAAAAAAAAAAA", None, None, None, None))]
    assert file_error(b"Code\nAAAAAAAAAAAAAAA\n") == (
        "“codes.csv” is 21\xa0bytes; files up to 20\xa0bytes can be uploaded."
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
        "“codes.ods” has no column of codes on any sheet. Sheets looked at: “Notes” (columns: "
        "“hello”); “Data” (columns: “Promo”, “Start”); “Empty” (columns: none). Choose the "
        "columns on the upload page, or rename the one to read."
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
            "Excel or LibreOffice, save it and upload it again.",
            "Code",
            "",
            ("", None, "", None, None),
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

    assert message == NO_CODE_COLUMN.format(name="codes.csv", found="“␁" + "Y" * 59 + "…”, “B”")


# Mutation testing found these behaviours untested.


def table_of(data: bytes, name: str = "codes.csv", **kwargs):
    return open_table(io.BytesIO(data), name=name, size=len(data), **kwargs)


def zip_of(members: dict[str, bytes | str]) -> bytes:
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    return output.getvalue()


OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # how an Excel 97-2003 workbook begins
OLE_HEAD = OLE_MAGIC + b"\0" * 100
UPLOAD_AS = "Upload it as .csv, .xlsx, .xlsm, .xlsb, .xls or .ods."


def test_all_five_template_columns_map_to_their_fields():
    data = (
        b"Available-till,Available-from,Issue-end,Issue-start,Code\n"
        b"2026-05-05,2026-04-04,2026-03-03,2026-02-02,ALL5\n"
    )

    assert read(data) == [(2, ("ALL5", "2026-02-02", "2026-03-03", "2026-04-04", "2026-05-05"))]


@pytest.mark.parametrize(
    "head, what",
    [
        (b"\x89PNG\r\n", "a PNG image"),
        (b"\xff\xd8\xff\xe0", "a JPEG image"),
        (b"GIF89a", "a GIF image"),
        (b"%PDF-1.4", "a PDF document"),
        (b"\x1f\x8b\x08", "a gzip archive"),
        (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
        (b"Rar!\x1a\x07", "a RAR archive"),
        (b"{\\rtf1\\ansi", "an RTF document"),
    ],
)
def test_each_known_kind_of_file_is_named_in_the_refusal(head, what):
    # Text after the magic bytes: only the magic tells what the file is.
    assert file_error(head + b"Code\nA\n" * 20, "upload.csv") == (
        f"“upload.csv” is not a CSV file or a spreadsheet (it is {what}). {UPLOAD_AS}"
    )


def test_zips_are_told_apart_by_their_members():
    assert detect_format(b"PK\x03\x04", name="codes.xlsm") == "xlsm"
    assert detect_format(b"PK\x03\x04", name="codes.zip") == "xlsx"  # not opened: no file
    workbook = zip_of({"xl/workbook.xml": "<workbook/>"})
    assert detect_format(workbook[:4], name="a.xlsx", file=io.BytesIO(workbook)) == "xlsx"
    assert detect_format(workbook[:4], name="a.XLSM", file=io.BytesIO(workbook)) == "xlsm"
    assert detect_format(workbook[:4], name="a.csv", file=io.BytesIO(workbook)) == "xlsx"
    binary = zip_of({"xl/workbook.bin": b"\0"})
    assert detect_format(binary[:4], name="a.xlsx", file=io.BytesIO(binary)) == "xlsb"
    ods = zip_of({"mimetype": "application/vnd.oasis.opendocument.spreadsheet"})
    assert detect_format(ods[:4], name="a.xlsx", file=io.BytesIO(ods)) == "ods"


def test_a_word_document_and_an_opendocument_text_are_named():
    docx = zip_of({"word/document.xml": "<w:document/>"})
    odt = zip_of({"mimetype": "application/vnd.oasis.opendocument.text"})
    refusal = (
        "“codes.zip” is not a CSV file or a spreadsheet (it is a word-processing document). "
        + UPLOAD_AS
    )

    assert file_error(docx, "codes.zip") == refusal
    assert file_error(odt, "codes.zip") == refusal


def test_a_zip_named_as_a_workbook_without_a_workbook_in_it_is_damaged():
    assert file_error(zip_of({"notes.txt": "x"}), "codes.ods") == (
        "“codes.ods” cannot be read as an OpenDocument spreadsheet (.ods): it is damaged, or not "
        "really an OpenDocument spreadsheet (.ods)."
    )


def test_a_fifth_of_control_bytes_makes_a_file_binary_and_less_does_not():
    # 100 bytes: 19 control bytes are a CSV with a bad row, 20 are not text.
    assert readers._looks_like_text(b"\x01" * 19 + b"A" * 81)
    assert not readers._looks_like_text(b"\x01" * 20 + b"A" * 80)
    # Tabs, newlines and carriage returns are not control bytes here.
    assert readers._looks_like_text(b"\t\n\r" * 30 + b"A" * 10)
    assert readers._looks_like_text(b"")


def test_utf16_without_a_bom_is_text_in_either_byte_order():
    little = "Code\nAB\nCD\n".encode("utf-16-le")
    big = "Code\nAB\nCD\n".encode("utf-16-be")

    assert (
        read(little)
        == read(big)
        == [
            (2, ("AB", None, None, None, None)),
            (3, ("CD", None, None, None, None)),
        ]
    )


def test_a_bom_alone_says_text_however_many_control_bytes_follow():
    data = codecs.BOM_UTF8 + b"Code\n" + b"A\x01\x02\x03\x04\x05\x06\n"

    assert read(data) == [(2, ("A\x01\x02\x03\x04\x05\x06", None, None, None, None))]
    utf16 = "Code\nA\x01\x02\x03\x04\n".encode("utf-16")
    assert read(utf16) == [(2, ("A\x01\x02\x03\x04", None, None, None, None))]


def test_the_header_is_the_first_non_blank_line_and_rows_keep_their_file_numbers():
    data = b"\n \r\n\t\nCode;Issue-end\nA;2026-01-01\n;\nB;\n"

    assert read(data) == [
        (5, ("A", None, "2026-01-01", None, None)),
        (7, ("B", None, "", None, None)),
    ]


def test_the_header_is_looked_for_in_the_first_20_lines_only():
    at_20 = b"\n" * 19 + b"Code\nA\n"
    at_21 = b"\n" * 20 + b"Code\nA\n"

    assert read(at_20) == [(21, ("A", None, None, None, None))]
    assert file_error(at_21) == (
        "The first 20 rows of “codes.csv” are blank: the header must be within them. Delete the "
        "blank rows above it."
    )
    assert file_error(b"\n" * 19) == "“codes.csv” holds nothing but blank rows."


def test_the_delimiter_is_the_one_the_header_uses_most():
    assert read(b"Code;Note,x;Issue-end\nA,1;2;2026-01-01\n") == [
        (2, ("A,1", None, "2026-01-01", None, None))
    ]
    assert read(b"Code\tIssue-end\tx;y\nA;1\t2026-01-01\n") == [
        (2, ("A;1", None, "2026-01-01", None, None))
    ]
    # A tie goes to the comma, then the semicolon.
    assert read(b"Code,x;y\nA,1;2\n") == [(2, ("A", None, None, None, None))]


def test_progress_of_a_csv_counts_the_bytes_read():
    data = b"Code\n" + b"".join(b"C%05d\n" % i for i in range(20000))  # past one read
    table = table_of(data)

    rows = list(table.rows)
    assert (len(rows), rows[-1]) == (20000, (20001, ("C19999", None, None, None, None)))
    assert (table.progress(), table.total) == (len(data), len(data))


def test_a_windows_1251_file_is_read_as_such_after_utf8_fails():
    data = "Code\nКОД1\nТОРТ2\n".encode("cp1251")

    assert [cells[0] for _, cells in read(data)] == ["КОД1", "ТОРТ2"]


def test_codes_that_read_as_capitals_in_two_encodings_are_asked_about():
    data = "Code\nКОД1\n".encode("cp1251")

    with pytest.raises(readers.EncodingUnclear) as excinfo:
        read(data)

    assert excinfo.value.readings == [("cp1251", ["КОД1"]), ("cp1253", ["ΚΞΔ1"])]
    assert str(excinfo.value) == (
        "“codes.csv” reads as text in more than one encoding, and its codes differ between them "
        "(such as “КОД1” in Windows-1251 (Cyrillic) or “ΚΞΔ1” in Windows-1253 (Greek)): choose "
        "the one it was saved in."
    )
    table = table_of(data, encoding="cp1253")
    assert [cells[0] for _, cells in table.rows] == ["ΚΞΔ1"]
    worker = table_of(data, ask=False)
    assert [cells[0] for _, cells in worker.rows] == ["КОД1"]
    assert worker.notes == [
        "Read as Windows-1251 (Cyrillic); as Windows-1253 (Greek) some codes would read "
        "differently (such as “КОД1” in Windows-1251 (Cyrillic) or “ΚΞΔ1” in Windows-1253 "
        "(Greek)): if these codes look wrong, upload the file again choosing its encoding."
    ]


def test_a_header_beyond_ascii_says_which_reading_is_the_files():
    data = "Промокод\nКОД1\n".encode("cp1251")

    assert read(data) == [(2, ("КОД1", None, None, None, None))]


def test_a_german_excel_file_keeps_its_umlauts():
    data = "Code;Notiz\r\nGRÜN2027;Frühling\r\nSCHÖN2027;schön\r\n".encode("cp1252")

    assert [cells[0] for _, cells in read(data)] == ["GRÜN2027", "SCHÖN2027"]


def test_many_columns_are_listed_up_to_20():
    header = ",".join(f"C{i}" for i in range(1, 23))

    first_20 = ", ".join(f"“C{i}”" for i in range(1, 21))
    assert file_error(f"{header}\nx\n".encode()) == NO_CODE_COLUMN.format(
        name="codes.csv", found=first_20 + ", and 2 more"
    )
    header = ",".join(f"C{i}" for i in range(1, 22))
    assert file_error(f"{header}\nx\n".encode()) == NO_CODE_COLUMN.format(
        name="codes.csv", found=first_20 + ", and 1 more"
    )
    header = ",".join(f"C{i}" for i in range(1, 21))
    assert file_error(f"{header}\nx\n".encode()) == NO_CODE_COLUMN.format(
        name="codes.csv", found=first_20
    )


def test_a_header_of_60_characters_is_shown_whole_and_61_shortened():
    assert file_error(("Y" * 60 + ",Y\nA,B\n").encode()) == NO_CODE_COLUMN.format(
        name="codes.csv", found="“" + "Y" * 60 + "”, “Y”"
    )
    assert file_error(("Y" * 61 + ",Y\nA,B\n").encode()) == NO_CODE_COLUMN.format(
        name="codes.csv", found="“" + "Y" * 60 + "…”, “Y”"
    )


def test_columns_and_ignored_columns_are_listed_as_titled():
    table = table_of(b"Note, Code ,,Extra\nn,A,,e\n")

    assert (table.columns, table.ignored_columns) == (["Note", "Code", "Extra"], ["Note", "Extra"])
    assert list(table.rows) == [(2, ("A", None, None, None, None))]


def test_workbook_not_loaded_is_only_checked_as_a_container():
    data = xlsx_bytes([("Code",), ("A",)])

    table = table_of(data, "codes.xlsx", load_sheets=False)

    assert (table.file_format, list(table.rows), table.total, table.progress()) == (
        "xlsx",
        [],
        len(data),
        0,
    )
    assert (table.columns, table.ignored_columns, table.notes) == ([], [], [])


def test_a_pasted_list_skips_a_code_header_on_the_first_line_only():
    rows = read(b"Code\nA\ncode\n", "Pasted list", pasted=True)

    assert rows == [(2, ("A", None, None, None, None)), (3, ("code", None, None, None, None))]
    table = table_of(b"X;Y\n", "Pasted list", pasted=True)
    assert (list(table.rows), table.columns, table.total, table.progress()) == (
        [(1, ("X", None, None, None, None)), (1, ("Y", None, None, None, None))],
        ["Code"],
        4,
        4,
    )
    assert (table.file_format, table.ignored_columns, table.notes) == ("csv", [], [])


def test_a_pasted_list_of_only_the_header_has_no_rows():
    with pytest.raises(ImportFileError) as excinfo:
        read(b"code\n\n", "Pasted list", pasted=True)

    assert str(excinfo.value) == "“Pasted list” has a header but no rows of codes under it."


def workbook_bytes(sheets: dict[str, list], chart_first: bool = False) -> bytes:
    workbook = Workbook()
    workbook.remove(workbook.active)
    if chart_first:
        workbook.create_chartsheet("Chart")
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    output = io.BytesIO()
    workbook.save(output)
    return output.getvalue()


def test_numeric_codes_are_counted_in_the_note_and_booleans_are_not():
    data = xlsx_bytes([("Code",), *[(n,) for n in range(1, 1000)], (2.5,), (True,), ("TEXT",)])

    table = table_of(data, "codes.xlsx")
    rows = list(table.rows)

    assert (len(rows), rows[998], rows[999], rows[1000]) == (
        1002,
        (1000, (999, None, None, None, None)),
        (1001, (2.5, None, None, None, None)),
        (1002, (True, None, None, None, None)),
    )
    assert table.notes == [
        "The Code column holds numbers (in 1,000 rows): Excel may have dropped leading zeros "
        "(00042 becomes 42). If your codes have them, format the column as Text and upload again."
    ]


def test_a_workbook_of_one_sheet_has_no_note_and_counts_its_rows():
    data = xlsx_bytes([("Code",), ("A",), (None,), ("B",)])

    table = table_of(data, "codes.xlsx")

    assert (table.total, table.progress()) == (4, 2)  # the first row is read ahead
    assert list(table.rows) == [
        (2, ("A", None, None, None, None)),
        (3, BLANK_ROW),
        (4, ("B", None, None, None, None)),
    ]
    assert (table.notes, table.progress(), table.columns, table.ignored_columns) == (
        [],
        4,
        ["Code"],
        [],
    )


def test_a_chart_sheet_is_not_looked_at():
    codes = workbook_bytes({"Codes": [("Code",), ("C1",)]}, chart_first=True)
    no_codes = workbook_bytes({"Data": [("Name", "Note"), ("C1", "x")]}, chart_first=True)

    table = table_of(codes, "codes.xlsx")
    assert (list(table.rows), table.notes) == ([(2, ("C1", None, None, None, None))], [])
    assert file_error(no_codes, "codes.xlsx") == (
        NO_CODE_COLUMN.format(name="codes.xlsx", found="“Name”, “Note”")
    )


def test_a_sheet_header_is_looked_for_in_its_first_20_rows_only():
    at_20 = xlsx_bytes([*[(None, "")] * 19, ("Code", "Issue-end"), ("A", "x")])
    at_21 = xlsx_bytes([*[(None, "")] * 20, ("Code", "Issue-end"), ("A", "x")])

    assert read(at_20, "codes.xlsx") == [(21, ("A", None, "x", None, None))]
    assert file_error(at_21, "codes.xlsx") == (
        "The first 20 rows of “codes.xlsx” are blank: the header must be within them. Delete "
        "the blank rows above it."
    )


def test_a_macro_workbook_gets_formulas_and_leading_zeros_checked_too():
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Code"])
    sheet.append(['="X"&"1"'])
    sheet.append([42])
    sheet["A3"].number_format = "00000"
    sheet.append([42.5])
    sheet["A4"].number_format = "00000"
    output = io.BytesIO()
    workbook.save(output)

    rows = read(output.getvalue(), "codes.xlsm")

    assert rows == [
        (
            2,
            UnreadableRow(
                "The Code cell holds a formula whose value was never computed: open the file in "
                "Excel or LibreOffice, save it and upload it again.",
                "Code",
                "",
                ("", None, None, None, None),
            ),
        ),
        (3, ("00042", None, None, None, None)),
        (4, (42.5, None, None, None, None)),  # not a whole number: no zeros to keep
    ]


def test_a_csv_row_shorter_than_the_header_is_read_with_empty_cells():
    rows = read(b"Code,Issue-start,Issue-end\nSHORT\nFULL,2026-01-01,2026-02-01\n")

    assert rows == [
        (2, ("SHORT", None, None, None, None)),
        (3, ("FULL", "2026-01-01", "2026-02-01", None, None)),
    ]


def test_xlsx_rows_are_numbered_as_excel_numbers_them():
    data = xlsx_bytes([["Code", "Issue-start"], ["FIRST", None], [None, None], ["THIRD", "x"]])

    rows = read(data, "codes.xlsx")

    assert rows == [(2, ("FIRST", "", None, None, None)), (4, ("THIRD", "x", None, None, None))]


def test_xlsx_header_below_blank_rows_numbers_rows_from_the_sheet_top():
    data = xlsx_bytes([[None], [None], ["Code"], ["A"], ["B"]])

    assert read(data, "codes.xlsx") == [
        (4, ("A", None, None, None, None)),
        (5, ("B", None, None, None, None)),
    ]


def test_a_zip_packed_more_than_the_ratio_over_50_mb_is_a_zip_bomb(settings):
    settings.IMPORT_MAX_XLSX_UNPACKED = 2 * 1024 * MB  # far above: the ratio alone refuses
    data = zip_bomb_bytes(51 * MB)
    ratio = 51 * MB // len(data)
    assert ratio > settings.IMPORT_MAX_XLSX_RATIO

    assert file_error(data, "codes.xlsx") == (
        f"“codes.xlsx” would unpack to 51.0\xa0MB, {ratio:,} times its size: refused as a "
        "possible zip bomb. Save the sheet as CSV instead."
    )


def test_a_zip_packed_within_the_ratio_is_not_a_zip_bomb(settings):
    settings.IMPORT_MAX_XLSX_UNPACKED = 2 * 1024 * MB
    data = zip_bomb_bytes(51 * MB)
    settings.IMPORT_MAX_XLSX_RATIO = 51 * MB // len(data)  # at the ratio, not above it

    assert "zip bomb" not in file_error(data, "codes.xlsx")


def test_a_highly_packed_zip_of_50_mb_or_less_is_not_a_zip_bomb(settings):
    settings.IMPORT_MAX_XLSX_UNPACKED = 2 * 1024 * MB
    data = zip_bomb_bytes(50 * MB)

    assert "zip bomb" not in file_error(data, "codes.xlsx")


def test_a_highly_packed_zip_of_a_byte_over_50_mb_is_a_zip_bomb(settings):
    settings.IMPORT_MAX_XLSX_UNPACKED = 2 * 1024 * MB
    data = zip_bomb_bytes(50 * MB + 1)
    ratio = (50 * MB + 1) // len(data)

    assert file_error(data, "codes.xlsx") == (
        f"“codes.xlsx” would unpack to 50.0\xa0MB, {ratio:,} times its size: refused as a "
        "possible zip bomb. Save the sheet as CSV instead."
    )


def test_a_zip_over_the_unpacked_limit_is_refused_at_the_limit_plus_one(settings):
    data = zip_bomb_bytes(MB)
    settings.IMPORT_MAX_XLSX_RATIO = 10**9
    settings.IMPORT_MAX_XLSX_UNPACKED = MB
    assert "zip bomb" not in file_error(data, "codes.xlsx")
    settings.IMPORT_MAX_XLSX_UNPACKED = MB - 1
    assert "zip bomb" in file_error(data, "codes.xlsx")


def test_an_old_excel_file_is_known_by_its_content_whatever_its_name():
    # Named .csv: only the content says it is an Excel 97-2003 workbook.
    assert detect_format(OLE_HEAD, name="codes.csv") == "xls"
    assert file_error(OLE_HEAD, "codes.csv") == (
        "“codes.csv” cannot be read as an Excel 97-2003 workbook (.xls): it is damaged, or not "
        "really an Excel 97-2003 workbook (.xls)."
    )


# Customer lists


def customers(data: bytes, name: str = "list.csv"):
    return customer_lists.open_customer_list(io.BytesIO(data), name=name, size=len(data))


def customer_error(data: bytes, name: str = "list.csv") -> str:
    with pytest.raises(ImportFileError) as excinfo:
        customers(data, name)
    return str(excinfo.value)


def test_a_customer_list_keeps_every_column_and_pads_short_rows():
    data = b"Name,Customer id,Email\nAnn,C1,ann@example.com\nBob,C2\n\nCid,C3,c,extra\n"

    table = customers(data)

    assert (table.header, table.customer_index, table.total) == (
        ["Name", "Customer id", "Email"],
        1,
        len(data),
    )
    assert list(table.rows) == [
        (2, ["Ann", "C1", "ann@example.com"]),
        (3, ["Bob", "C2", ""]),
        (5, ["Cid", "C3", "c", "extra"]),
    ]
    assert table.progress() == len(data)


@pytest.mark.parametrize(
    "header, index",
    [
        ("Id,customer_id,Customer", 2),
        ("Id,Customer-Id,Name", 1),
        ("Name,ID", 1),
        ("customer,x", 0),
    ],
)
def test_the_customer_column_is_customer_then_customer_id_then_id(header, index):
    assert customers(f"{header}\n1,2,3\n".encode()).customer_index == index


def test_a_customer_list_without_an_id_column_or_rows_is_refused():
    assert customer_error(b"Name,Email\nAnn,a\n") == (
        "“list.csv” has no customer id column (named Customer, Customer id or Id). Columns found: "
        "“Name”, “Email”."
    )
    assert customer_error(b"Customer\n\n\n") == (
        "“list.csv” has a header but no rows of customers under it."
    )
    assert customer_error(b"") == "“list.csv” is empty."


def test_a_customer_list_at_the_size_limit_is_read_and_one_byte_over_is_refused(settings):
    settings.IMPORT_MAX_FILE_SIZE = 12

    assert list(customers(b"Customer\nC1\n").rows) == [(2, ["C1"])]
    assert customer_error(b"Customer\nC10\n") == (
        "“list.csv” is 13\xa0bytes; files up to 12\xa0bytes can be uploaded."
    )


def test_a_customer_list_workbook_is_read_from_its_first_sheet():
    data = workbook_bytes(
        {
            "Customers": [("Customer", "Name"), (1042.0, "Ann"), (None, None), ("C7",)],
            "Other": [("Customer",), ("NOT",)],
        }
    )
    below_blank_rows = workbook_bytes({"Sheet": [(None,), (None,), ("Id",), ("C8",)]})

    table = customers(data, "list.xlsx")

    assert (table.header, table.customer_index, table.total) == (["Customer", "Name"], 0, 4)
    assert list(table.rows) == [(2, ["1042", "Ann"]), (4, ["C7", ""])]
    assert table.progress() == 4
    assert list(customers(below_blank_rows, "list.xlsx").rows) == [(4, ["C8"])]


def test_a_customer_list_row_with_a_quote_never_closed_is_kept_as_unreadable():
    rows = list(customers(b'Customer,Note\nC1,"oops\nC2,x\n').rows)

    assert [(n, getattr(row, "column", row)) for n, row in rows] == [(2, "Note"), (3, ["C2", "x"])]


def test_a_damaged_customer_workbook_is_named_by_its_format():
    assert customer_error(b"PK\x03\x04 broken", "list.xlsx") == (
        "“list.xlsx” cannot be read as an Excel workbook (.xlsx): it is damaged, or not really an "
        "Excel workbook (.xlsx)."
    )
    assert customer_error(OLE_HEAD, "list.xls") == (
        "“list.xls” cannot be read as an Excel 97-2003 workbook (.xls): it is damaged, or not "
        "really an Excel 97-2003 workbook (.xls)."
    )


def test_the_upload_forms_offer_every_format_read_here():
    from imports.forms import AssignForm, UploadForm

    for form in (UploadForm(), AssignForm()):
        assert form.fields["file"].widget.attrs["accept"] == ".csv,.txt,.xlsx,.xlsm,.xlsb,.xls,.ods"


def test_a_quarter_of_nul_bytes_on_one_side_is_not_yet_utf16():
    # 8 bytes, 2 NULs at odd (then even) places: a quarter, not more: binary, refused.
    refusal = f"“codes.csv” is not a CSV file or a spreadsheet. {UPLOAD_AS}"
    assert file_error(b"A\0B\0CDEF") == refusal
    assert file_error(b"\0A\0BCDEF") == refusal
    # 3 of 8: UTF-16 without a BOM.
    assert readers._looks_like_text(b"A\0B\0C\0DE")
    assert readers._looks_like_text(b"\0A\0B\0CDE")


def test_a_csv_padded_with_spaces_is_text():
    # Cells are trimmed by validation, not here.
    assert read(b"Code" + b" " * 40 + b"\nA" + b" " * 40 + b"\n") == [
        (2, ("A" + " " * 40, None, None, None, None))
    ]


def test_a_one_byte_file_is_not_empty_and_a_column_without_a_header_is_of_codes():
    table = table_of(b"A")

    assert list(table.rows) == [(1, ("A", None, None, None, None))]
    assert table.notes == ["The file has no header: every row was read as a code."]


def test_a_csv_table_says_its_format_and_a_bom_in_a_header_cell_is_dropped():
    table = table_of("\ufeff\ufeffCode,Xmas\nA,1\n".encode("utf-8-sig"))

    assert (table.file_format, table.columns, table.ignored_columns) == (
        "csv",
        ["Code", "Xmas"],
        ["Xmas"],
    )


def test_a_utf8_character_cut_by_the_sample_is_still_read_as_utf8():
    data = b"Code\n" + "Ж".encode() * 40000 + "\nКОД\n".encode()
    assert data[65535] == "Ж".encode()[0]  # the sample's last byte starts a character

    rows = read(data)

    assert rows == [
        (2, ("Ж" * 40000, None, None, None, None)),
        (3, ("КОД", None, None, None, None)),
    ]


def test_a_workbook_of_chart_sheets_only_has_no_sheet_to_read():
    data = workbook_bytes({}, chart_first=True)

    assert file_error(data, "codes.xlsx") == (
        "“codes.xlsx” has no column of codes on any sheet. Sheets looked at: none."
    )


def test_a_customer_list_header_is_looked_for_in_the_first_20_rows_only():
    at_20 = workbook_bytes({"S": [*[(None, "")] * 19, ("Customer",), (1.5,)]})
    at_21 = workbook_bytes({"S": [*[(None, "")] * 20, ("Customer",), (1.5,)]})

    assert list(customers(at_20, "list.xlsx").rows) == [(21, ["1.5"])]
    assert customer_error(at_21, "list.xlsx") == (
        "“list.xlsx” has no customer id column (named Customer, Customer id or Id). Columns "
        "found: none."
    )


def test_the_encoding_is_judged_on_the_first_64_kb_only():
    # A stray Windows-1251 byte past the first 64 KB costs its row, not the whole file.
    head = b"Code\n" + "КОД\n".encode() * 9000  # 63,005 bytes of UTF-8
    data = head + b"A" * (65540 - len(head)) + b"\n\xc6\n"
    assert 65536 < data.index(b"\xc6") < 64 * 1025

    rows = read(data)

    assert (len(rows), rows[0], rows[-1]) == (
        9002,
        (2, ("КОД", None, None, None, None)),
        (9003, ("\ufffd", None, None, None, None)),
    )


def test_only_the_first_100_bytes_of_a_zips_mimetype_are_read():
    ods_type = "application/vnd.oasis.opendocument.spreadsheet"
    within = zip_of({"mimetype": " " * (100 - len(ods_type)) + ods_type})
    beyond = zip_of({"mimetype": " " * (101 - len(ods_type)) + ods_type})

    assert detect_format(within[:4], name="a.xlsx", file=io.BytesIO(within)) == "ods"
    with pytest.raises(ImportFileError) as excinfo:
        detect_format(beyond[:4], name="a.xlsx", file=io.BytesIO(beyond))
    assert str(excinfo.value) == (
        "“a.xlsx” cannot be read as an Excel workbook (.xlsx): it is damaged, or not really an "
        "Excel workbook (.xlsx)."
    )


def test_a_sheet_whose_code_column_title_has_separators_is_found():
    data = xlsx_bytes([("_Code_", "Issue start"), ("A", "x")])

    assert read(data, "codes.xlsx") == [(2, ("A", "x", None, None, None))]


def test_a_pasted_list_with_bytes_that_are_not_utf8_keeps_the_row():
    assert read(b"A\xff\nB\n", "Pasted list", pasted=True) == [
        (1, ("A\ufffd", None, None, None, None)),
        (2, ("B", None, None, None, None)),
    ]


def test_a_customer_list_saved_as_csv_utf8_by_excel_is_read():
    data = "Customer;Имя\nC1;Анна\n".encode("utf-8-sig")

    table = customers(data)

    assert (table.header, list(table.rows)) == (["Customer", "Имя"], [(2, ["C1", "Анна"])])


# Every line accounted for, and files met where they are.


def rows_of(data: bytes, name: str = "codes.csv", **kwargs):
    """All rows read, blank ones too, each as its code (or the marker that stands in for it)."""
    table = table_of(data, name, **kwargs)
    return [(n, cells[0] if isinstance(cells, tuple) else cells) for n, cells in table.rows]


def test_a_quote_never_closed_costs_its_own_row_only_and_says_where_it_opened():
    lines = ["Code,Issue-end,Note"] + [f"C{n},,note {n}" for n in range(2, 22)]
    lines[2] = 'C3,,"my note, unfinished'
    data = "\n".join(lines).encode() + b"\n"

    rows = rows_of(data)

    assert [n for n, _ in rows] == list(range(2, 22))
    (broken,) = [row for _, row in rows if isinstance(row, UnreadableRow)]
    assert (broken.reason, broken.column, broken.value) == (
        "A quote opened here is never closed, so the rows after it would be read as part of this "
        "cell. Remove the quote or close it, then upload this row again.",
        "Note",
        '"my note, unfinished',
    )
    assert broken.cells == ("C3", None, "", None, None)
    assert [code for _, code in rows if isinstance(code, str)] == [
        f"C{n}" for n in range(2, 22) if n != 3
    ]


def test_a_stray_quote_in_the_code_column_and_one_closed_rows_later_lose_nothing_else():
    data = b'Code,Note\nC2,x\n"C3,x\nC4,x\nC5,"stray\nC6,x\nC7,x\n'

    rows = rows_of(data)

    assert [(n, getattr(row, "column", row)) for n, row in rows] == [
        (2, "C2"),
        (3, "Code"),
        (4, "C4"),
        (5, "Note"),
        (6, "C6"),
        (7, "C7"),
    ]


def test_a_quote_open_at_the_end_of_the_last_line_is_caught_too():
    rows = rows_of(b'Code,Note\nC2,x\nC3,"open')

    assert rows[0] == (2, "C2")
    assert (rows[1][0], rows[1][1].column) == (3, "Note")


def test_a_real_multi_line_note_is_one_row_numbered_by_its_first_line():
    data = b'Code,Note,Issue-end\nC2,"line one\nline two",2027-01-01\nC4,x,\n'

    table = table_of(data)

    assert list(table.rows) == [
        (2, ("C2", None, "2027-01-01", None, None)),
        (4, ("C4", None, "", None, None)),
    ]


def test_a_quote_runs_at_most_20_lines_before_it_counts_as_never_closed():
    def note_of(lines):
        return "\n".join(f"part {n}" for n in range(lines))

    closing_on_its_20th_line = f'Code,Note\nA,"{note_of(20)}"\nB,x\n'.encode()
    closing_on_its_21st_line = f'Code,Note\nA,"{note_of(21)}"\nB,x\n'.encode()

    assert rows_of(closing_on_its_20th_line) == [(2, "A"), (22, "B")]
    rows = rows_of(closing_on_its_21st_line)
    assert isinstance(rows[0][1], UnreadableRow)
    # The broken row, then each line it would have swallowed read again on its own.
    assert [n for n, _ in rows] == list(range(2, 24))
    assert rows[-1] == (23, "B")


def test_a_line_break_inside_a_code_cell_rejects_each_of_its_lines():
    rows = rows_of(b'Code,Note\n"A\nB",x\nC,x\n')

    assert [(n, getattr(row, "column", row)) for n, row in rows] == [(2, "Code"), (3, ""), (4, "C")]
    assert rows[0][1].reason.startswith("A quote opened here closes only on line 3")
    assert rows[1][1].reason == (
        "This line is inside a quote opened on line 2 and closed on line 3: see line 2."
    )
    assert rows[1][1].cells == ('B"', None, None, None, None)


def test_a_stray_quote_closed_by_another_over_whole_rows_rejects_each_line_it_spans():
    data = b'Code,Note\nC2,x\nC3,"oops\nC4,x\nC5,5"\nC6,x\n'

    rows = rows_of(data)

    assert [(n, getattr(row, "reason", row)[:30]) for n, row in rows] == [
        (2, "C2"),
        (3, "A quote opened here closes onl"),
        (4, "This line is inside a quote op"),
        (5, "This line is inside a quote op"),
        (6, "C6"),
    ]
    assert rows[2][1].cells == ("C4", None, None, None, None)


def test_a_line_of_more_cells_than_the_header_inside_a_quote_is_a_row_not_part_of_a_note():
    data = b'Code,Note\nC2,"oops\nC3,x, y"\nC4,x\n'

    rows = rows_of(data)

    assert [(n, getattr(row, "reason", row)[:30]) for n, row in rows] == [
        (2, "A quote opened here closes onl"),
        (3, "This line is inside a quote op"),
        (4, "C4"),
    ]


def test_the_quote_that_closes_a_stray_one_opens_no_cell_over_the_lines_after_it():
    # Line 4's quote closes line 2's; read again from line 4, it opens a note down to line 5.
    data = b'Code,Note,Issue-end\nC2,"a\nC3,x,\nC4,"\nC5,z"\nC6,w,\n'

    rows = rows_of(data)

    assert [(n, getattr(row, "reason", row)) for n, row in rows][2:] == [
        (4, "This line is inside a quote opened on line 2 and closed on line 4: see line 2."),
        (5, "This line is inside a quote opened on line 4 and closed on line 5: see line 4."),
        (6, "C6"),
    ]
    assert (rows[2][1].value, rows[3][1].value) == ('C4,"', 'C5,z"')


def test_a_multi_line_note_whose_lines_could_be_rows_is_rejected_line_by_line_not_guessed():
    one_cell = b'Code,Note,Issue-end\nC2,"Street 1,\nCity 12345",2027-01-01\nC4,x,\n'
    could_be_rows = b'Code,Note,Issue-end\nC2,"Street 1,\nCity, 12345",2027-01-01\nC4,x,\n'

    assert rows_of(one_cell) == [(2, "C2"), (4, "C4")]
    rows = rows_of(could_be_rows)
    assert [(n, type(row).__name__) for n, row in rows] == [
        (2, "UnreadableRow"),
        (3, "UnreadableRow"),
        (4, "str"),
    ]


def test_blank_lines_and_rows_of_empty_cells_are_read_as_blank_rows():
    assert rows_of(b"Code,Note\nA,x\n\n,\n  \nB,y\n\n") == [
        (2, "A"),
        (3, BLANK_ROW),
        (4, BLANK_ROW),
        (5, BLANK_ROW),
        (6, "B"),
        (7, BLANK_ROW),
    ]


def test_excels_sep_line_names_the_delimiter():
    table = table_of(b"sep=;\nCode;Note,with comma\nA;x,y\n")

    assert list(table.rows) == [(3, ("A", None, None, None, None))]
    assert table.mapping.delimiter == ";"
    assert table.notes == []


def test_a_title_and_blank_rows_above_the_header_are_skipped_and_said():
    data = "Промокоды весенней акции\n\nКод;Действует до\nВЕСНА1;31.05.2027\n".encode()

    table = table_of(data)

    assert list(table.rows) == [(4, ("ВЕСНА1", None, None, None, "31.05.2027"))]
    assert table.notes == ["The header is on row 3: the 2 rows above it were skipped."]
    assert table.mapping.header_row == 3


def test_a_row_like_data_above_the_header_ends_the_search():
    with pytest.raises(readers.ColumnsUnclear) as excinfo:
        read(b"A1,2027-01-01\nCode,Issue-end\nA2,2027-01-01\n")

    assert excinfo.value.first_rows[:2] == [["A1", "2027-01-01"], ["Code", "Issue-end"]]


@pytest.mark.parametrize(
    "title",
    [
        "Code",
        "CODE",
        " promo code ",
        "Promo-Code",
        "Coupon",
        "Voucher code",
        "Код",
        "ПРОМОКОД",
        "Промо-код",
        "Купон",
        "Code (required)",
        "promo_code",
    ],
)
def test_the_code_column_is_known_by_its_common_names(title):
    assert read(f"{title};Note\nX1;n\n".encode()) == [(2, ("X1", None, None, None, None))]


def test_date_columns_are_known_by_their_common_names_in_english_and_russian():
    data = "Промокод;Выдача с;Выдача до;Действует с;Действует до\nA;1;2;3;4\n".encode()
    assert read(data) == [(2, ("A", "1", "2", "3", "4"))]
    data = b"Coupon,Valid from,Expiry date\nA,3,4\n"
    assert read(data) == [(2, ("A", None, None, "3", "4"))]


def test_a_single_column_of_codes_without_a_header_is_read_whole():
    table = table_of(b"AAA\nBBB\n\nCCC\n")

    assert [(n, c if c is BLANK_ROW else c[0]) for n, c in table.rows] == [
        (1, "AAA"),
        (2, "BBB"),
        (3, BLANK_ROW),
        (4, "CCC"),
    ]
    assert table.mapping.header_row == 0


def test_columns_without_a_header_are_for_the_manager_to_choose():
    with pytest.raises(readers.ColumnsUnclear) as excinfo:
        read(b"AAA;2027-01-01\nBBB;2027-02-01\n")

    assert (excinfo.value.first_rows, excinfo.value.delimiter) == (
        [["AAA", "2027-01-01"], ["BBB", "2027-02-01"]],
        ";",
    )


def test_columns_the_manager_chose_are_read_from_the_row_after_the_chosen_header():
    mapping = ColumnMapping(0, (1, None, None, None, 0), delimiter=";")
    table = table_of(b"2027-01-01;AAA\n2027-02-01;BBB\n", mapping=mapping)

    assert list(table.rows) == [
        (1, ("AAA", None, None, None, "2027-01-01")),
        (2, ("BBB", None, None, None, "2027-02-01")),
    ]
    assert table.notes == [
        "Columns as chosen on the upload page: Code from column B, Available-till from column A."
    ]
    with_header = ColumnMapping(2, (1, None, None, None, None), delimiter=",")
    table = table_of(b"Export\nWhen,What\nx,AAA\n", mapping=with_header)
    assert list(table.rows) == [(3, ("AAA", None, None, None, None))]


def test_a_workbook_title_above_the_header_and_a_chosen_sheet():
    data = workbook_bytes(
        {
            "Notes": [("Read me first", None)],
            "Codes": [("Spring codes, 2027", None), (None, None), ("Купон", "Note"), ("K1", "x")],
        }
    )

    table = table_of(data, "codes.xlsx")

    assert list(table.rows) == [(4, ("K1", None, None, None, None))]
    assert table.notes == [
        "Codes read from the sheet “Codes”.",
        "The header is on row 3: the 2 rows above it were skipped.",
    ]
    chosen = ColumnMapping(0, (1, None, None, None, None), sheet="Codes")
    table = table_of(data, "codes.xlsx", mapping=chosen)
    assert [row for _, row in table.rows][3] == ("x", None, None, None, None)


def test_a_formula_never_computed_in_the_last_row_is_rejected_not_dropped():
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Code"])
    sheet.append(["A1"])
    sheet.append(['="X"&"1"'])
    output = io.BytesIO()
    workbook.save(output)

    rows = rows_of(output.getvalue(), "codes.xlsx")

    assert rows[0] == (2, "A1")
    assert rows[1][0] == 3 and isinstance(rows[1][1], UnreadableRow)


def test_a_title_line_without_delimiters_does_not_make_the_rows_one_column():
    with pytest.raises(readers.ColumnsUnclear) as excinfo:
        read(b"Spring export\nPromo;Valid\nB1;2026-02-01\nB2;2026-02-01\n")

    assert excinfo.value.delimiter == ";"
    assert excinfo.value.first_rows[1:] == [
        ["Promo", "Valid"],
        ["B1", "2026-02-01"],
        ["B2", "2026-02-01"],
    ]


def test_a_title_naming_the_codes_stands_above_the_header_naming_more():
    table = table_of(b"Promo codes\r\nCode;Valid until\r\nPCT001;2027-12-31\r\n")

    assert list(table.rows) == [(3, ("PCT001", None, None, None, "2027-12-31"))]
    assert table.notes == ["The header is on row 2: the row above it was skipped."]


def test_a_one_word_title_above_the_header_and_the_header_repeated_below():
    rows = rows_of(b"PROMO2027\r\nCode\r\nNSP001\r\nCode\r\nNSP002\r\n")

    assert rows[0] == (3, "NSP001")
    assert rows[1][0] == 4 and rows[1][1].reason == "The header again, as a row: skipped."
    assert rows[2] == (5, "NSP002")


def test_under_a_header_of_one_column_each_line_is_one_cell():
    assert [c[0] for _, c in read(b'Code\r\n1,23457E+11\r\nA;1\r\n"B,2"\r\n')] == [
        "1,23457E+11",
        "A;1",
        "B,2",
    ]


def test_a_hidden_sheet_is_read_after_the_visible_ones():
    workbook = Workbook()
    workbook.active.title = "Old"
    workbook.active.append(["Code"])
    workbook.active.append(["OLD-1"])
    workbook.active.sheet_state = "hidden"
    sheet = workbook.create_sheet("Codes")
    sheet.append(["Code"])
    sheet.append(["NEW-1"])
    output = io.BytesIO()
    workbook.save(output)

    assert [c[0] for _, c in read(output.getvalue(), "codes.xlsx")] == ["NEW-1"]


def test_blank_rows_above_a_formula_below_the_last_value_are_counted():
    workbook = Workbook()
    for row in (["Code"], ["F1"], ["F2"], [None], ['="F"&"5"']):
        workbook.active.append(row)
    output = io.BytesIO()
    workbook.save(output)

    rows = rows_of(output.getvalue(), "codes.xlsx")

    assert [(n, type(c).__name__) for n, c in rows] == [
        (2, "str"),
        (3, "str"),
        (4, "BlankRow"),
        (5, "UnreadableRow"),
    ]


def test_columns_the_manager_did_not_pick_are_named():
    mapping = ColumnMapping(0, (0, None, None, None, None), delimiter=",")
    table = table_of(b"A1,x,y\nA2,x,y\n", mapping=mapping)

    assert table.ignored_columns == ["column B", "column C"]


# Encodings as a manager's files showed them.


def test_a_utf8_file_with_a_few_stray_windows_1251_bytes_stays_utf8():
    data = ("Code\r\n" + "".join(f"КОД-{i:03d}\r\n" for i in range(40))).encode()
    data += "ЛИШНИЙ-1\r\n".encode("cp1251")

    rows = read(data)

    assert [cells[0] for _, cells in rows[:2]] == ["КОД-000", "КОД-001"]
    assert "\ufffd" in rows[-1][1][0]


def test_lower_case_russian_codes_are_not_read_as_koi8_r():
    data = "Code;Note\r\nскидка10;для всех\r\nподарок;ок\r\nвесна2027;ок\r\n".encode("cp1251")

    assert [cells[0] for _, cells in read(data)] == ["скидка10", "подарок", "весна2027"]


def test_a_french_file_is_not_read_as_mac_cyrillic_nor_asked_about():
    data = "Code;Note\r\nFÊTE10;pour tous\r\nCRÈME5;été\r\nNOËL5;x\r\n".encode("cp1252")

    assert [cells[0] for _, cells in read(data)] == ["FÊTE10", "CRÈME5", "NOËL5"]
