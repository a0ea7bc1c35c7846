"""What reading a workbook costs the worker, measured in a process of its own (calamine's
memory is not Python's, so tracemalloc would not see it): bounded by IMPORT_MAX_XLSX_UNPACKED,
whatever the file's size."""

import json
import os
import subprocess
import sys

from tests.imports.files import bomb_workbook

MB = 1024 * 1024
# The worker's read of every row of a workbook, and its peak resident memory above the
# process's own before it (ru_maxrss, in kB on Linux).
READ = """
import json, os, resource, sys
import django
django.setup()
from imports.readers import ImportFileError, open_table
path = sys.argv[1]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    with open(path, "rb") as file:
        table = open_table(file, name="codes.xlsx", size=os.path.getsize(path))
        rows = sum(1 for _ in table.rows)
    outcome = rows
except ImportFileError as error:
    outcome = str(error)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"outcome": outcome, "peak": peak * 1024}))
"""


def worker_read(path, *, unpacked_limit: int) -> dict:
    env = {**os.environ, "IMPORT_MAX_XLSX_UNPACKED": str(unpacked_limit)}
    env.setdefault("DJANGO_SETTINGS_MODULE", "promo_project.settings")
    done = subprocess.run(
        [sys.executable, "-c", READ, str(path)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_workbook_near_the_unpacked_limit_is_read_in_memory_bounded_by_the_limit(tmp_path):
    limit = 24 * MB
    path = tmp_path / "codes.xlsx"
    path.write_bytes(bomb_workbook(limit - MB))

    read = worker_read(path, unpacked_limit=limit)

    assert isinstance(read["outcome"], int) and read["outcome"] > 300_000
    # calamine holds the sheet: 1.5 to 2.3 times its XML in the files measured.
    assert read["peak"] < 3 * limit


def test_a_workbook_over_the_unpacked_limit_is_refused_before_it_is_parsed(tmp_path):
    limit = 24 * MB
    path = tmp_path / "codes.xlsx"
    path.write_bytes(bomb_workbook(limit + MB))

    read = worker_read(path, unpacked_limit=limit)

    assert "would unpack to 25.0\xa0MB" in read["outcome"]
    assert read["peak"] < 4 * MB  # the zip's directory, nothing unpacked
