"""The management commands for scripts and cron jobs: the admin's engines, answers for machines."""

import csv
import fcntl
import io
import json
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest
from django.core.management import CommandError, call_command

from imports.models import Import
from pools.models import Code
from tests.factories import make_codes, make_pool

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> dict:
    out = io.StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_import_codes_adds_every_valid_row_and_reports_like_the_admin(tmp_path):
    pool = make_pool()
    path = tmp_path / "codes.csv"
    path.write_text("Code\nSPRING-1\nSPRING-2\nSPRING-1\n\n")

    out = io.StringIO()
    with pytest.raises(SystemExit) as exit:
        call_command("import_codes", str(path), "--pool", pool.slug, "--json", stdout=out)
    answer = json.loads(out.getvalue())

    # A duplicate row is not added: the exit status says so, unless told otherwise.
    assert exit.value.code == 1
    job = Import.objects.get(pk=answer["import"])
    assert answer["status"] == job.status == Import.Status.COMPLETED_WITH_ERRORS
    assert (answer["codes_added"], answer["duplicates_in_file"]) == (2, 1)
    assert answer["rows_read"] == job.rows_accounted_for
    assert set(Code.objects.filter(pool=pool).values_list("code", flat=True)) == {
        "SPRING-1",
        "SPRING-2",
    }
    assert any("Row 4" in line for line in answer["rejected"]), answer["rejected"]


def test_import_codes_allowed_to_leave_rows_out_exits_zero(tmp_path):
    pool = make_pool()
    path = tmp_path / "codes.csv"
    path.write_text("Code\nA-1\nA-1\n")

    answer = run("import_codes", str(path), "--pool", pool.slug, "--allow-rejected")

    assert answer["codes_added"] == 1


def test_import_codes_refuses_a_file_as_the_upload_page_does(tmp_path):
    pool = make_pool()
    path = tmp_path / "codes.csv"
    path.write_text("Name,Amount\nann,3\n")

    with pytest.raises(CommandError) as refused:
        call_command("import_codes", str(path), "--pool", pool.slug)

    assert refused.value.returncode == 2
    assert "codes.csv" in str(refused.value)
    assert not Import.objects.filter(pool=pool, status=Import.Status.COMPLETED).exists()


def test_unknown_pool_is_named():
    with pytest.raises(CommandError, match="No pool has the ID 'nope'"):
        call_command("pool_status", "nope")


def test_export_codes_writes_the_pools_codes_of_a_status(tmp_path):
    pool = make_pool()
    make_codes(pool, ["K-1", "K-2", "K-3"])
    target = tmp_path / "codes.csv"

    answer = run("export_codes", "--pool", pool.slug, "--status", "available", "-o", str(target))

    with target.open(newline="") as file:
        rows = list(csv.reader(file))
    assert answer["rows"] == 3
    assert sorted(row[0] for row in rows[1:]) == ["K-1", "K-2", "K-3"]


def test_pool_status_gives_each_pools_counts():
    pool = make_pool(notify_below_enabled=True, notify_below=5)
    make_codes(pool, ["S-1", "S-2"])

    answer = run("pool_status", pool.slug)

    (facts,) = answer["pools"]
    assert (facts["pool"], facts["available"], facts["total"], facts["threshold"]) == (
        pool.slug,
        2,
        2,
        5,
    )


@pytest.mark.postgresql
def test_a_terminal_gets_a_progress_bar_and_a_pipe_gets_none(tmp_path, settings):
    """The command as a person runs it (a pseudo-terminal) and as a script does (a pipe)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the command runs in a process of its own")
    pool = make_pool()
    path = tmp_path / "codes.csv"
    path.write_text("Code\n" + "".join(f"T-{n}\n" for n in range(2000)))
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "PROMO_VAR_DIR": str(tmp_path / "var"),
    }
    command = [sys.executable, "manage.py", "import_codes", str(path), "--pool", pool.slug]

    piped = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert "%|" not in piped.stderr and "Rows read 2000" in piped.stdout.replace(",", "")

    path.write_text("Code\n" + "".join(f"U-{n}\n" for n in range(2000)))
    leader, follower = pty.openpty()
    # A terminal of 24 rows and 80 columns, as a person's is.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    shown = subprocess.run(
        command, env=env, stdin=follower, stdout=follower, stderr=follower, timeout=300
    )
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    assert shown.returncode == 0, screen.decode(errors="replace")
    assert b"100%|" in screen
    assert Code.objects.filter(pool=pool).count() == 4000


def test_assign_codes_writes_the_list_back_with_a_code_for_each_customer(tmp_path):
    pool = make_pool(launched=True)
    make_codes(pool, ["G-1", "G-2"])
    customers = tmp_path / "customers.csv"
    customers.write_text("Customer\nann\nbob\ncat\n")
    target = tmp_path / "with-codes.csv"

    out = io.StringIO()
    with pytest.raises(SystemExit) as exit:
        call_command(
            "assign_codes",
            str(customers),
            "--pool",
            pool.slug,
            "-o",
            str(target),
            "--json",
            stdout=out,
        )
    answer = json.loads(out.getvalue())

    # Three customers, two codes: one left without a code, which the exit status says.
    assert exit.value.code == 1
    assert (answer["codes_issued"], answer["shortfall"]) == (2, 1)
    with target.open(newline="", encoding="utf-8-sig") as file:
        rows = list(csv.reader(file))
    given = {row[0]: row[-1] for row in rows[1:]}
    assert sorted(code for code in given.values() if code) == ["G-1", "G-2"]
    assert Code.objects.filter(pool=pool, status=Code.Status.ISSUED).count() == 2


def test_withdraw_codes_takes_the_listed_codes_out_of_use(tmp_path):
    pool = make_pool(launched=True)
    make_codes(pool, ["W-1", "W-2", "W-3"])
    listed = tmp_path / "leaked.txt"
    listed.write_text("W-1\nW-3\nNOT-HERE\n")

    answer = run("withdraw_codes", str(listed), "--pool", pool.slug, "--reason", "leaked")

    assert (answer["codes_withdrawn"], answer["not_found"]) == (2, 1)
    assert set(
        Code.objects.filter(pool=pool, status=Code.Status.WITHDRAWN).values_list("code", flat=True)
    ) == {"W-1", "W-3"}
