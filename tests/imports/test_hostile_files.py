"""Files as people really save them, uploaded and imported end to end: each either imports
exactly (every valid code stored as written, every bad row rejected with its row, column and a
reason) or is refused on the upload page; and the report's sum holds on every one."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook

from imports.engine import import_run
from imports.models import Import
from imports.services import import_file_start
from pools.models import Code
from tests.factories import make_codes, make_pool

pytestmark = pytest.mark.django_db


def imported(data: bytes, name: str = "codes.csv", pool=None, **choices) -> Import:
    pool = pool or make_pool()
    job = import_file_start(pool=pool, file=SimpleUploadedFile(name, data), **choices)
    import_run(import_id=job.pk)
    job.refresh_from_db()
    assert job.rows_read == job.rows_accounted_for, "the report's sum holds"
    return job


def stored(job: Import) -> list[str]:
    return sorted(Code.objects.filter(pool=job.pool).values_list("code", flat=True))


def rejected(job: Import) -> list[tuple[int, str, str]]:
    return [(r.row_number, r.column, r.reason) for r in job.rejections.order_by("row_number")]


def workbook(rows, formats=None) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(list(row))
    for cell, number_format in (formats or {}).items():
        sheet[cell].number_format = number_format
    output = io.BytesIO()
    book.save(output)
    return output.getvalue()


def twenty_rows(broken_row: str) -> bytes:
    lines = ["Code,Issue-end,Note"] + [f"SPRING{n:02},2027-12-31,fine" for n in range(2, 22)]
    lines[2] = broken_row
    return ("\r\n".join(lines) + "\r\n").encode()


def test_a_quote_never_closed_in_the_note_costs_only_its_row():
    job = imported(twenty_rows('SPRING03,2027-12-31,"see the note'))

    assert stored(job) == [f"SPRING{n:02}" for n in range(2, 22) if n != 3]
    assert rejected(job)[0][:2] == (3, "Note")
    assert "A quote opened here is never closed" in rejected(job)[0][2]
    assert (job.rows_read, job.codes_added, job.rows_rejected) == (20, 19, 1)
    assert job.status == Import.Status.COMPLETED_WITH_ERRORS


def test_a_quote_never_closed_in_the_code_column_costs_only_its_row():
    job = imported(twenty_rows('"SPRING03,2027-12-31,fine'))

    assert len(stored(job)) == 19
    assert rejected(job)[0][:2] == (3, "Code")


def test_a_ten_megabyte_cell_is_rejected_as_too_long_with_its_row_and_column():
    data = b"Code,Note\r\nGOOD1,x\r\n" + b"Z" * (10 * 1024 * 1024) + b",x\r\nGOOD2,x\r\n"

    job = imported(data)

    assert stored(job) == ["GOOD1", "GOOD2"]
    assert rejected(job) == [(3, "Code", "The code is longer than 100 characters.")]


def test_a_title_a_blank_row_and_a_russian_header_above_the_codes():
    data = "Промокоды на весну\r\n\r\nПромокод;Действует до\r\nВЕСНА1;31.05.2027\r\n".encode()

    job = imported(data)

    assert stored(job) == ["ВЕСНА1"]
    assert "The header is on row 3" in job.message
    assert (job.rows_read, job.codes_added) == (1, 1)


def test_excels_sep_line_and_a_promo_code_header():
    job = imported(b"sep=;\r\nPromo code;Note\r\nA1;x,y\r\nA2;z\r\n")

    assert stored(job) == ["A1", "A2"]


def test_a_coupon_header_in_a_workbook_below_a_title():
    job = imported(
        workbook([("Spring coupons",), (None,), ("Coupon",), ("K1",), ("K2",)]), "c.xlsx"
    )

    assert stored(job) == ["K1", "K2"]


def test_a_formula_without_a_value_in_the_last_row_is_rejected():
    job = imported(workbook([("Code",), ("F1",), ('="F"&"2"',)]), "codes.xlsx")

    assert stored(job) == ["F1"]
    assert [row[:2] for row in rejected(job)] == [(3, "Code")]


def test_the_reports_sum_counts_each_row_once():
    pool = make_pool()
    make_codes(pool, ["OLD1", "OLD2"])
    lines = ["Code,Issue-end", "SPRING-7KQ2,2027-01-01"]  # the template's example row: skipped
    lines += [f"NEW{n},2027-12-31" for n in range(1, 1988)]
    lines += ["OLD1,", "OLD2,", "NEW1,", "NEW2,", "", ""]
    lines += [f"BAD {n}," for n in range(7)]
    data = ("\n".join(lines) + "\n").encode()

    job = imported(data, pool=pool)

    assert (
        job.rows_read,
        job.codes_added,
        job.already_in_pool,
        job.duplicates_in_file,
        job.rows_rejected,
        job.rows_skipped,
    ) == (2001, 1987, 2, 2, 7, 3)


def test_a_file_with_no_column_of_codes_is_refused_on_the_upload_page():
    with pytest.raises(ValidationError) as excinfo:
        import_file_start(
            pool=make_pool(), file=SimpleUploadedFile("c.csv", b"Name,When\nA,1\nB,2\n")
        )

    assert "no column of codes" in str(excinfo.value)


def test_a_title_that_names_the_codes_above_the_real_header():
    job = imported(b"Promo codes\r\nCode;Valid until\r\nPCT001;2027-12-31\r\n")

    assert stored(job) == ["PCT001"]
    assert Code.objects.get(pool=job.pool).available_till is not None


def test_a_row_rejected_for_its_quote_keeps_its_cells_for_the_download():
    job = imported(twenty_rows('SPRING03,2027-12-31,"see the note'))

    rejection = job.rejections.get()
    assert rejection.cells[:3] == ["SPRING03", None, "2027-12-31"]


def test_excels_leading_zeros_trick_and_a_german_scientific_number():
    job = imported(b'Code\r\n="00123"\r\n1,23457E+11\r\n')

    assert stored(job) == ["00123"]
    assert [row[:2] for row in rejected(job)] == [(3, "Code")]
