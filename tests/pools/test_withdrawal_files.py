"""A list of codes to withdraw uploaded as a file (code_services.withdrawal_file_start): the
request stores it and queues the job; the worker reads it once, resumes after a kill without
counting a code twice, deletes it, and tells on the report page what was wrong with it."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from pools.code_services import (
    LIST_EMPTY,
    LIST_NOT_TEXT,
    NEEDS_NEW_FILE,
    withdrawal_file_start,
    withdrawal_rerun,
    withdrawal_run,
    withdrawals,
)
from pools.models import Code, Withdrawal
from pools.selectors import pool_stock
from tests.factories import counts_by_status, make_codes, make_pool

pytestmark = pytest.mark.django_db


class Killed(BaseException):
    """The worker's process ends here (SIGKILL): no handler of the job's runs, nothing more is
    written."""


def upload(content: bytes, name: str = "leaked.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def stored_files() -> list[str]:
    """The withdrawal lists in storage."""
    if not default_storage.exists("withdrawals"):
        return []
    found, folders = [], ["withdrawals"]
    while folders:
        folder = folders.pop()
        subfolders, files = default_storage.listdir(folder)
        folders += [f"{folder}/{name}" for name in subfolders]
        found += [f"{folder}/{name}" for name in files]
    return found


def worker_dies(withdrawal: Withdrawal) -> None:
    """Age the heartbeat of the attempt that died, as the minutes without it would."""
    Withdrawal.objects.filter(pk=withdrawal.pk).update(
        heartbeat_at=timezone.now() - timedelta(hours=1)
    )


def test_an_uploaded_list_is_stored_in_the_request_and_read_by_the_worker(
    manager_client, monkeypatch
):
    pool = make_pool(launched=True)
    make_codes(pool, ["LEAK1", "LEAK2", "LEAK3", "KEEP"])

    def read_in_the_request(*args, **kwargs):
        raise AssertionError("the list was read in the request")

    monkeypatch.setattr(withdrawals, "code_list_read", read_in_the_request)
    response = manager_client.post(
        reverse("admin:pools_pool_withdraw", args=[pool.pk]),
        {
            "codes": "LEAK1",
            "file": upload(b"code\nLEAK2;LEAK3\nLEAK1\nNOPE\n"),
            "reason": "leak",
            "confirm": "1",
        },
    )

    withdrawal = Withdrawal.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:pools_withdrawal_change", args=[withdrawal.pk])
    # Queued with the pasted code; the file's wait on disk for the worker.
    assert (withdrawal.status, withdrawal.requested, withdrawal.codes_requested) == (
        "queued",
        "LEAK1",
        1,
    )
    assert (withdrawal.list_file_name, withdrawal.list_read) == ("leaked.csv", False)
    assert stored_files() == [withdrawal.list_file.name]
    assert counts_by_status(pool)["withdrawn"] == 0
    report = manager_client.get(response.url).content.decode()
    assert "1 pasted, and those of the file, once it is read" in report

    monkeypatch.undo()
    done = withdrawal_run(withdrawal_id=withdrawal.pk)

    assert done.status == "completed"
    assert done.requested.split("\n") == ["LEAK1", "LEAK2", "LEAK3", "NOPE"]
    assert (done.codes_requested, done.codes_withdrawn, done.not_found) == (4, 3, 1)
    assert (done.list_read, done.list_file.name) == (True, "")
    assert stored_files() == []  # its codes are on the row now
    assert pool_stock(pool=pool) == 1


@pytest.mark.parametrize(
    "dies", ["reading the file", "before the file is deleted", "after a slice of codes"]
)
def test_a_worker_killed_mid_run_is_resumed_and_counts_each_code_once(dies, settings, monkeypatch):
    settings.WITHDRAW_SLICE = 2
    pool = make_pool(launched=True)
    make_codes(pool, [f"K{i}" for i in range(6)] + ["KEEP"])
    withdrawal = withdrawal_file_start(
        pool=pool,
        file=upload(b"code\n" + b"".join(b"K%d\n" % i for i in range(6)) + b"GONE\nK0\n"),
        codes=["K5"],
    )
    reads, slices, deletes = [], [], []
    real_read, real_slice, real_delete = (
        withdrawals.code_list_read,
        withdrawals._withdraw_slice,
        withdrawals._list_file_delete,
    )

    def read(file, **kwargs):
        reads.append(file)
        codes = real_read(file, **kwargs)
        if dies == "reading the file" and len(reads) == 1:
            raise Killed
        return codes

    def delete(job):
        deletes.append(job.pk)
        if dies == "before the file is deleted" and len(deletes) == 1:
            raise Killed
        real_delete(job)

    def withdraw_slice(job, chunk):
        slices.append(chunk)
        if dies == "after a slice of codes" and len(slices) == 2:
            raise Killed
        real_slice(job, chunk)

    monkeypatch.setattr(withdrawals, "code_list_read", read)
    monkeypatch.setattr(withdrawals, "_list_file_delete", delete)
    monkeypatch.setattr(withdrawals, "_withdraw_slice", withdraw_slice)

    with pytest.raises(Killed):
        withdrawal_run(withdrawal_id=withdrawal.pk)
    worker_dies(withdrawal)
    done = withdrawal_run(withdrawal_id=withdrawal.pk)

    assert (done.status, done.attempts) == ("completed", 2)
    # The pasted code first, then the file's, each once.
    assert done.requested.split("\n") == ["K5", "K0", "K1", "K2", "K3", "K4", "GONE"]
    assert (done.codes_requested, done.codes_done) == (7, 7)
    assert (done.codes_withdrawn, done.from_stock, done.not_found) == (6, 6, 1)
    assert (done.already_withdrawn, done.not_found_sample) == (0, "GONE")
    assert Code.objects.filter(status="withdrawn", withdrawal=done).count() == 6
    assert counts_by_status(pool) == {
        "available": 1,
        "issued": 0,
        "redeemed": 0,
        "expired": 0,
        "withdrawn": 6,
        "total": 7,
    }
    # The file is read again only if its codes were not committed.
    assert len(reads) == (2 if dies == "reading the file" else 1)
    assert (done.list_file.name, stored_files()) == ("", [])


def test_a_file_that_is_not_text_past_its_first_bytes_fails_on_the_report_page(manager_client):
    pool = make_pool(launched=True)
    make_codes(pool, ["T1", "T2"])
    # Text for longer than the request looks, then a NUL byte: only the worker can tell.
    content = b"T1\n" * (withdrawals.LIST_SNIFF_BYTES // 3 + 1) + b"PK\x03\x04\x00\x00T2\n"
    manager_client.post(
        reverse("admin:pools_pool_withdraw", args=[pool.pk]),
        {"codes": "T2", "file": upload(content, "codes.txt"), "confirm": "1"},
    )
    withdrawal = Withdrawal.objects.get()

    failed = withdrawal_run(withdrawal_id=withdrawal.pk)

    message = LIST_NOT_TEXT.format(name="codes.txt")
    assert (failed.status, failed.message, failed.needs_new_file) == ("failed", message, True)
    assert counts_by_status(pool)["withdrawn"] == 0  # the pasted code neither: nothing is
    assert stored_files() == []
    page = manager_client.get(reverse("admin:pools_withdrawal_change", args=[failed.pk]))
    page = page.content.decode()
    assert f'<p class="errornote withdrawal-failure">{message}</p>' in page
    assert "Running this withdrawal again cannot help: fix the file and" in page
    assert 'value="Run again"' not in page

    with pytest.raises(ValidationError) as refused:
        withdrawal_rerun(withdrawal=failed)
    assert refused.value.messages == [NEEDS_NEW_FILE]


def test_a_file_without_codes_fails_unless_codes_were_pasted_with_it(manager_client):
    pool = make_pool(launched=True)
    make_codes(pool, ["P1"])
    empty = withdrawal_file_start(pool=pool, file=upload(b"code\n \n,;\n", "empty.csv"))
    with_pasted = withdrawal_file_start(
        pool=pool, file=upload(b"code\n", "header.csv"), codes=["P1"]
    )

    failed = withdrawal_run(withdrawal_id=empty.pk)
    done = withdrawal_run(withdrawal_id=with_pasted.pk)

    assert (failed.status, failed.message) == ("failed", LIST_EMPTY.format(name="empty.csv"))
    assert failed.message == (
        "“empty.csv” holds no codes, so nothing was withdrawn. Check the file and upload it again."
    )
    page = manager_client.get(reverse("admin:pools_withdrawal_change", args=[failed.pk]))
    assert "holds no codes, so nothing was withdrawn." in page.content.decode()
    assert (done.status, done.codes_requested, done.codes_withdrawn) == ("completed", 1, 1)
    assert stored_files() == []


def test_a_failure_that_is_not_the_files_can_be_run_again_and_reads_the_file_then(
    manager_client, monkeypatch
):
    pool = make_pool(launched=True)
    make_codes(pool, ["R1"])
    withdrawal = withdrawal_file_start(pool=pool, file=upload(b"R1\n"))

    def storage_down(*args, **kwargs):
        raise OSError("the shared disk is gone")

    monkeypatch.setattr(withdrawals, "code_list_read", storage_down)
    with pytest.raises(OSError):
        withdrawal_run(withdrawal_id=withdrawal.pk)
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.can_run_again) == ("failed", True)
    page = manager_client.get(reverse("admin:pools_withdrawal_change", args=[withdrawal.pk]))
    assert 'value="Run again"' in page.content.decode()

    monkeypatch.undo()
    withdrawal_rerun(withdrawal=withdrawal)
    done = withdrawal_run(withdrawal_id=withdrawal.pk)
    assert (done.status, done.codes_withdrawn) == ("completed", 1)


def test_the_service_holds_the_list_limit_and_refuses_a_workbook(settings):
    settings.WITHDRAW_MAX_LIST_SIZE = 10
    pool = make_pool(launched=True)

    with pytest.raises(ValidationError) as too_large:
        withdrawal_file_start(pool=pool, file=upload(b"code\nLONGER1\n"))
    with pytest.raises(ValidationError) as workbook:
        withdrawal_file_start(pool=pool, file=upload(b"PK\x03\x04\x00", "codes.xlsx"))

    assert too_large.value.messages == [
        "“leaked.csv” is 13\xa0bytes; files up to 10\xa0bytes can be uploaded."
    ]
    assert workbook.value.messages == [LIST_NOT_TEXT.format(name="codes.xlsx")]
    assert not Withdrawal.objects.exists() and stored_files() == []
