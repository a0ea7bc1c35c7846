import io
import zipfile

from openpyxl import Workbook
from python_calamine import CalamineWorkbook

from imports import xlsx_cells


def workbook_with_errors() -> bytes:
    """Errors typed (openpyxl writes "#N/A" as an error value, t="e") and one a formula left,
    as Excel saves it: the formula with its cached error."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Code", "Issue-start"])
    sheet.append(["#N/A", "#DIV/0!"])
    sheet.append(["FORMULA", "#REF!"])
    sheet.append(["PLAIN", None])
    output = io.BytesIO()
    workbook.save(output)
    return rewrite_sheet(
        output.getvalue(),
        b'<c r="B3" t="e"><v>#REF!</v></c>',
        b'<c r="B3" t="e"><f>VLOOKUP(A3,Z:Z,2,0)</f><v>#REF!</v></c>',
    )


def rewrite_sheet(data: bytes, old: bytes, new: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w") as archive:
        for info in source.infolist():
            body = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                assert old in body
                body = body.replace(old, new)
            archive.writestr(info, body)
    return output.getvalue()


def test_calamine_reads_an_error_value_as_an_empty_cell():
    """Why xlsx_cells looks for errors: calamine loses them, so a #N/A in a date column would
    import a code with no date at all."""
    sheet = CalamineWorkbook.from_filelike(io.BytesIO(workbook_with_errors())).get_sheet_by_index(0)

    assert list(sheet.iter_rows())[1:] == [["", ""], ["FORMULA", ""], ["PLAIN", ""]]


def test_error_values_typed_or_left_by_a_formula_are_found_in_the_mapped_columns():
    info = xlsx_cells.cell_info(io.BytesIO(workbook_with_errors()), "Sheet", [0, 1, None])

    assert info == {2: {0: ("error", "#N/A"), 1: ("error", "#DIV/0!")}, 3: {1: ("error", "#REF!")}}


def test_an_error_in_a_column_not_mapped_is_not_reported():
    info = xlsx_cells.cell_info(io.BytesIO(workbook_with_errors()), "Sheet", [0, None, None])

    assert info == {2: {0: ("error", "#N/A")}}


def test_a_needle_across_two_chunks_is_found(monkeypatch):
    monkeypatch.setattr(xlsx_cells, "_CHUNK", 7)
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w") as archive:
        archive.writestr("sheet.xml", b'<c r="A1" t="e">')

    with zipfile.ZipFile(output) as archive:
        # t="e" starts at byte 10: across the chunks [7, 14) and [14, 16).
        assert xlsx_cells._contains(archive, "sheet.xml", (b"<f", b't="e"'))
        assert not xlsx_cells._contains(archive, "sheet.xml", (b"<f", b"<v"))
