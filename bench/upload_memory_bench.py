"""Peak memory of the largest workbook an upload may carry, in the web process and the worker.

    make bench-upload-memory     (or: .venv/bin/python bench/upload_memory_bench.py)
    make bench-tiny              (every benchmark at a tiny size, as CI runs them)

Needs neither PostgreSQL nor Redis: nothing measured touches a database (each measuring
process checks that it opened no connection), and Django is pointed at the benchmarks' own
database (bench/common.py) so that it could not touch another. Generated files are cached under
bench/.cache.

The workbooks, written with streaming zip writes (a row at a time, never the sheet in memory):
- "largest": an XLSX whose members unpack to just under IMPORT_MAX_XLSX_UNPACKED (within one
  row; default 256 MB), of highly compressible rows (a running code and customer id, four dates
  the same on every row) so that the file stays within IMPORT_SNIFF_MAX_WORKBOOK and under
  IMPORT_MAX_XLSX_RATIO: the largest workbook an upload is allowed to carry;
- "over": the same with one row more, just over the limit, which must be refused cheaply;
- "parsed": the same rows up to IMPORT_SNIFF_MAX_UNPACKED (default 64 MB), the largest
  workbook the upload request itself parses (inspection.sheets_loadable);
- and a CSV of the largest workbook's rows, the baseline.

What is measured, each in a fresh process so that one peak cannot hide another (ru_maxrss is a
high-water mark): the process's peak resident memory over its own baseline, taken after
django.setup() and the readers' imports, of
- web, import: the import form's check of the upload (inspection.inspect_file, which asks
  inspection.sheets_loadable whether to parse the workbook), as imports.services.import_file_start;
- web, assignment: the assignment upload's check (customer_lists.open_customer_list with
  load_sheets=sheets_loadable(...)), as imports.assignment_services.assignment_start;
- worker: the import's full read (readers.open_table with ask=False, every row iterated), as
  imports.engine does; for the largest workbook and for the CSV of its rows.
Each figure is the median of BENCH_REPEAT repetitions (at least 3). `--tiny` sets
IMPORT_MAX_XLSX_UNPACKED to 8 MB and IMPORT_SNIFF_MAX_UNPACKED to 2 MB unless the environment
sets them.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import common

STEPS = ("web-import", "web-assignment", "worker")

_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_parser.add_argument("--tiny", action="store_true", help="an 8 MB limit, as CI runs it")
# Internal: one measurement in this (fresh) process, its outcome printed as JSON.
_parser.add_argument("--measure", nargs=2, metavar=("STEP", "PATH"), help=argparse.SUPPRESS)
ARGUMENTS = _parser.parse_args()

if common.TINY:
    os.environ.setdefault("IMPORT_MAX_XLSX_UNPACKED", str(8 * 1024 * 1024))
    os.environ.setdefault("IMPORT_SNIFF_MAX_UNPACKED", str(2 * 1024 * 1024))
os.environ.update(common.django_environ())
sys.path.insert(0, str(common.ROOT))
CACHE = common.CACHE
MB = 1024 * 1024


# Workbooks

_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" '
    b'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/xl/workbook.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    b'<Override PartName="/xl/worksheets/sheet1.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    b"</Types>"
)
_RELATIONSHIPS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Target="xl/workbook.xml" Type="http://schemas.openxmlformats.org/'
    b'officeDocument/2006/relationships/officeDocument"/></Relationships>'
)
_WORKBOOK = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    b'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    b'<sheets><sheet name="Codes" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELATIONSHIPS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="http://schemas.openxmlformats'
    b'.org/officeDocument/2006/relationships/worksheet"/></Relationships>'
)
_PARTS = {
    "[Content_Types].xml": _CONTENT_TYPES,
    "_rels/.rels": _RELATIONSHIPS,
    "xl/workbook.xml": _WORKBOOK,
    "xl/_rels/workbook.xml.rels": _WORKBOOK_RELATIONSHIPS,
}
_SHEET_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)
_SHEET_FOOT = b"</sheetData></worksheet>"

HEADER = ("Code", "Customer", "Issue-start", "Issue-end", "Available-from", "Available-till")
DATES = ("2026-01-01 00:00", "2026-12-31 23:59", "2026-01-01 00:00", "2026-12-31 23:59")
# The first row number: every code and customer id has ten digits, so every row of the sheet
# is as long as every other, and a sheet of a given unpacked size is a count of rows.
FIRST = 1_000_000_000


def _cells(values) -> bytes:
    return b"".join(b'<c t="inlineStr"><is><t>%s</t></is></c>' % value.encode() for value in values)


def row_values(n: int) -> tuple[str, ...]:
    return (f"BENCH{n:010d}", f"cust-{n:010d}", *DATES)


_HEADER_ROW = b"<row>" + _cells(HEADER) + b"</row>"
_ROW_LENGTH = len(b"<row>" + _cells(row_values(FIRST)) + b"</row>")
_FIXED = sum(map(len, _PARTS.values())) + len(_SHEET_HEAD) + len(_HEADER_ROW) + len(_SHEET_FOOT)


def rows_within(unpacked: int) -> int:
    """Return the most rows whose workbook unpacks to no more than `unpacked` bytes."""
    return (unpacked - _FIXED) // _ROW_LENGTH


def make_workbook(path: Path, rows: int) -> Path:
    """Write an XLSX of a header and `rows` rows, a block of rows at a time."""
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in _PARTS.items():
            archive.writestr(name, data)
        unpacked = _FIXED - len(_SHEET_FOOT) + rows * _ROW_LENGTH
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=unpacked > 2**31) as sheet:
            sheet.write(_SHEET_HEAD + _HEADER_ROW)
            for start in range(FIRST, FIRST + rows, 10_000):
                stop = min(start + 10_000, FIRST + rows)
                sheet.write(
                    b"".join(
                        b"<row>" + _cells(row_values(n)) + b"</row>" for n in range(start, stop)
                    )
                )
            sheet.write(_SHEET_FOOT)
    tmp.rename(path)
    return path


def make_csv(path: Path, rows: int) -> Path:
    """Write the same header and rows as a CSV."""
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        f.write(",".join(HEADER) + "\r\n")
        for start in range(FIRST, FIRST + rows, 10_000):
            stop = min(start + 10_000, FIRST + rows)
            f.write("".join(",".join(row_values(n)) + "\r\n" for n in range(start, stop)))
    tmp.rename(path)
    return path


# One measurement (in its own process)


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _check_own_peak(peak_kib: int) -> None:
    """Fail if ru_maxrss holds a peak from before this process's exec: Linux carries a parent's
    high-water mark into the child it starts (a parent of 600 MB gave a baseline of 626 MB),
    which would hide this process's own."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return
    own = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    assert peak_kib <= own + 1024, f"ru_maxrss {peak_kib} KiB is not this process's ({own} KiB)"


def measure(step: str, path: Path) -> dict:
    """Run one step on the file in this process; return its peak memory over the baseline."""
    import django

    django.setup()
    # Imported before the baseline: what the step costs, not the modules it loads.
    import python_calamine  # noqa: F401
    from django.db import connections

    from imports import csv_table, workbooks  # noqa: F401
    from imports.customer_lists import open_customer_list
    from imports.inspection import inspect_file, sheets_loadable
    from imports.readers import ImportFileError, open_table

    size = path.stat().st_size
    name = path.name
    baseline = _peak_kib()
    _check_own_peak(baseline)
    started = time.perf_counter()
    rows = 0
    with open(path, "rb") as f:
        try:
            if step == "web-import":
                inspect_file(f, name=name, size=size)
            elif step == "web-assignment":
                load = sheets_loadable(f, size=size)
                open_customer_list(f, name=name, size=size, load_sheets=load)
            else:
                table = open_table(f, name=name, size=size, ask=False)
                rows = sum(1 for _ in table.rows)
            outcome = "accepted"
        except ImportFileError as error:
            outcome = f"refused: {error}"
    seconds = time.perf_counter() - started
    peak = _peak_kib()
    assert connections["default"].connection is None, "a measurement opened a database connection"
    return {
        "baseline_kib": baseline,
        "peak_kib": peak,
        "seconds": seconds,
        "outcome": outcome,
        "rows": rows,
    }


def measured(step: str, path: Path) -> dict:
    """Run one step in a fresh Python process; return what it measured."""
    result = subprocess.run(
        [sys.executable, __file__, "--measure", step, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        sys.exit(f"{step} on {path.name} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# Runs


def unpacked_of(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist())


def main() -> int:
    from django.conf import settings

    limit = settings.IMPORT_MAX_XLSX_UNPACKED
    sniff_unpacked = settings.IMPORT_SNIFF_MAX_UNPACKED
    CACHE.mkdir(parents=True, exist_ok=True)

    largest_rows = rows_within(limit)
    files = {
        "largest": make_workbook(CACHE / f"upload-memory-{limit}.xlsx", largest_rows),
        "over": make_workbook(CACHE / f"upload-memory-{limit}-over.xlsx", largest_rows + 1),
        "parsed": make_workbook(
            CACHE / f"upload-memory-{sniff_unpacked}.xlsx", rows_within(sniff_unpacked)
        ),
        "csv": make_csv(CACHE / f"upload-memory-{limit}.csv", largest_rows),
    }
    # What the workbooks are said to be.
    largest, over = unpacked_of(files["largest"]), unpacked_of(files["over"])
    assert limit - _ROW_LENGTH < largest <= limit < over <= limit + _ROW_LENGTH, (largest, over)
    assert unpacked_of(files["parsed"]) <= sniff_unpacked
    largest_size = files["largest"].stat().st_size
    assert largest_size <= settings.IMPORT_SNIFF_MAX_WORKBOOK, largest_size
    assert largest // largest_size <= settings.IMPORT_MAX_XLSX_RATIO, largest // largest_size

    # The start of readers.ZIP_BOMB: refused by the zip's directory, not as damaged.
    zip_bomb = f"refused: “{files['over'].name}” would unpack to"
    plan = [
        ("largest", "web-import", "accepted"),
        ("largest", "web-assignment", "accepted"),
        ("largest", "worker", "accepted"),
        ("over", "web-import", zip_bomb),
        ("over", "web-assignment", zip_bomb),
        ("over", "worker", zip_bomb),
        ("parsed", "web-import", "accepted"),
        ("parsed", "web-assignment", "accepted"),
        ("csv", "worker", "accepted"),
    ]
    print(
        f"IMPORT_MAX_XLSX_UNPACKED {limit:,} B, IMPORT_SNIFF_MAX_UNPACKED {sniff_unpacked:,} B, "
        f"IMPORT_SNIFF_MAX_WORKBOOK {settings.IMPORT_SNIFF_MAX_WORKBOOK:,} B; "
        f"{largest_rows:,} rows in the largest workbook",
        flush=True,
    )
    results: dict[tuple[str, str], list[dict]] = {}
    for repetition in range(1, common.REPEAT + 1):
        for kind, step, expected in plan:
            result = measured(step, files[kind])
            if not result["outcome"].startswith(expected):
                sys.exit(f"{step} on {files[kind].name}: {result['outcome']}, not {expected}")
            if step == "worker" and expected == "accepted":
                assert result["rows"] == largest_rows, (kind, result["rows"], largest_rows)
            results.setdefault((kind, step), []).append(result)
            extra = (result["peak_kib"] - result["baseline_kib"]) / 1024
            print(
                f"{kind:>7} {step:<14} #{repetition}: +{extra:7.1f} MB over "
                f"{result['baseline_kib'] / 1024:5.1f} MB, {result['seconds']:6.2f} s, "
                f"{result['outcome'][:60]}",
                flush=True,
            )

    def extras(kind, step) -> list[float]:
        return [(r["peak_kib"] - r["baseline_kib"]) / 1024 for r in results[kind, step]]

    print()
    print("| workbook | step | file MB | unpacked MB | peak extra MB | peak/unpacked | s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for kind, step, _ in plan:
        path = files[kind]
        unpacked = path.stat().st_size if kind == "csv" else unpacked_of(path)
        extra = statistics.median(extras(kind, step))
        seconds = statistics.median(r["seconds"] for r in results[kind, step])
        label = {
            "largest": "largest allowed",
            "over": "one row over (refused)",
            "parsed": "largest parsed in the request",
            "csv": "CSV of the same rows",
        }[kind]
        print(
            f"| {label} | {step} | {path.stat().st_size / MB:.1f} | {unpacked / MB:.1f} | "
            f"{extra:.1f} | {extra * MB / unpacked:.2f} | {seconds:.2f} |"
        )
    print()
    # Repetition by repetition: each ratio of two runs made one after the other.
    common.figure(
        "worker_xlsx/csv_extra",
        [
            x / max(c, 1 / 1024)
            for x, c in zip(extras("largest", "worker"), extras("csv", "worker"), strict=True)
        ],
        "reported",
        0,
    )
    common.figure(
        "worker_xlsx/csv_peak",
        [
            x["peak_kib"] / c["peak_kib"]
            for x, c in zip(results["largest", "worker"], results["csv", "worker"], strict=True)
        ],
        "reported",
        0,
    )
    return common.report()


if __name__ == "__main__":
    if ARGUMENTS.measure:
        step, path = ARGUMENTS.measure
        assert step in STEPS, step
        print(json.dumps(measure(step, Path(path))))
    else:
        sys.exit(main())
