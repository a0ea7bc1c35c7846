"""What calamine does not tell of an XLSX sheet: formulas never computed, error values (#N/A,
which calamine reads as an empty cell), numbers shown with leading zeros. Read from the sheet's
XML in one streaming pass, only when the file may have any of them."""

import posixpath
import re
import zipfile
from typing import BinaryIO
from xml.etree.ElementTree import iterparse

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_ZEROS = re.compile(r'^(?:0+|"?0+"?)$')
_CHUNK = 1024 * 1024


def cell_info(file: BinaryIO, sheet_name: str, indexes: list[int | None]) -> dict:
    """Return {row number: {field index: ("formula", None) | ("error", "#N/A") | ("zeros",
    width)}}."""
    columns = {index: field for field, index in enumerate(indexes) if index is not None}
    with zipfile.ZipFile(file) as archive:
        path = _sheet_path(archive, sheet_name)
        if path is None:
            return {}
        zero_styles = _zero_styles(archive)
        # Error values come of formulas, or are typed (t="e" without a formula).
        if not zero_styles and not _contains(archive, path, (b"<f", b't="e"')):
            return {}
        with archive.open(path) as sheet:
            return _scan(sheet, columns, zero_styles)


def _contains(archive: zipfile.ZipFile, path: str, needles: tuple[bytes, ...]) -> bool:
    """Return True if the member holds any of the needles."""
    longest = max(len(needle) for needle in needles)
    tail = b""
    with archive.open(path) as member:
        while chunk := member.read(_CHUNK):
            seam = tail + chunk[:longest]
            if any(needle in seam or needle in chunk for needle in needles):
                return True
            tail = chunk[-longest:]
    return False


def _sheet_path(archive: zipfile.ZipFile, sheet_name: str) -> str | None:
    workbook = archive.read("xl/workbook.xml")
    rels = archive.read("xl/_rels/workbook.xml.rels")
    targets = {}
    for _, element in iterparse(_bytes_io(rels)):
        if element.tag == f"{_PKG_REL}Relationship":
            targets[element.get("Id")] = element.get("Target")
    for _, element in iterparse(_bytes_io(workbook)):
        if element.tag == f"{_MAIN}sheet" and element.get("name") == sheet_name:
            target = targets.get(element.get(f"{_REL}id"))
            if target is None:
                return None
            if target.startswith("/"):
                return target[1:]
            return posixpath.normpath(posixpath.join("xl", target))
    return None


def _zero_styles(archive: zipfile.ZipFile) -> dict[int, int]:
    """Return {cell style index: digits} for the styles whose number format is 0000…."""
    try:
        styles = archive.read("xl/styles.xml")
    except KeyError:
        return {}
    formats: dict[int, int] = {}
    result: dict[int, int] = {}
    in_cell_xfs = False
    xf_index = 0
    for event, element in iterparse(_bytes_io(styles), events=("start", "end")):
        if event == "start" and element.tag == f"{_MAIN}cellXfs":
            in_cell_xfs = True
        elif event == "end" and element.tag == f"{_MAIN}cellXfs":
            in_cell_xfs = False
        elif event == "end" and element.tag == f"{_MAIN}numFmt":
            code = element.get("formatCode") or ""
            if _ZEROS.match(code) and code.count("0") > 1:
                formats[int(element.get("numFmtId"))] = code.count("0")
        elif event == "end" and element.tag == f"{_MAIN}xf" and in_cell_xfs:
            digits = formats.get(int(element.get("numFmtId") or 0))
            if digits:
                result[xf_index] = digits
            xf_index += 1
    return result


def _scan(sheet, columns: dict[int, int], zero_styles: dict[int, int]) -> dict:
    info: dict[int, dict] = {}
    row_number = 0
    column = -1
    for event, element in iterparse(sheet, events=("start", "end")):
        tag = element.tag
        if event == "start":
            if tag == f"{_MAIN}row":
                row_number = int(element.get("r") or row_number + 1)
                column = -1
            continue
        if tag == f"{_MAIN}c":
            ref = element.get("r")
            column = _column_index(ref) if ref else column + 1
            field = columns.get(column)
            if field is not None:
                formula = element.find(f"{_MAIN}f")
                value = element.find(f"{_MAIN}v")
                if formula is not None and (value is None or not value.text):
                    info.setdefault(row_number, {})[field] = ("formula", None)
                elif element.get("t") == "e" and value is not None and value.text:
                    info.setdefault(row_number, {})[field] = ("error", value.text[:20])
                elif element.get("t") in (None, "n") and value is not None:
                    digits = zero_styles.get(int(element.get("s") or 0))
                    if digits:
                        info.setdefault(row_number, {})[field] = ("zeros", digits)
            element.clear()
        elif tag == f"{_MAIN}row":
            element.clear()
    return info


def _column_index(ref: str) -> int:
    index = 0
    for char in ref:
        if not char.isalpha():
            break
        index = index * 26 + ord(char.upper()) - 64
    return index - 1


def _bytes_io(data: bytes):
    import io

    return io.BytesIO(data)
