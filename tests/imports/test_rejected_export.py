"""The rejected rows of a big import as an export job: started from the import's report, written
by the export jobs in row order (resumed after a kill without repeating a row), downloaded by
staff who may view the pool's codes, announced by e-mail."""

import io

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.urls import reverse
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from imports.engine import import_run
from imports.models import Import, Rejection
from imports.selectors import REJECTED_HEADER, rejected_rows, rejected_rows_after
from pools import export_services
from pools.export_services import code_export_run
from pools.models import CodeExport
from tests.factories import csv_rows, finished, make_manager, make_pool, make_staff
from tests.imports.files import csv_upload
from tests.worker import wait_for

pytestmark = pytest.mark.django_db

BAD_DATE = "“x” is not a date: use YYYY-MM-DD HH:MM, DD.MM.YYYY HH:MM or DD/MM/YYYY."


def imported_with_rejections(client, rows: int) -> Import:
    """Upload a file whose every other row is rejected (a bad date), and run the import."""
    pool = make_pool()
    lines = ["Code,Issue-start"]
    for n in range(rows):
        lines += [f"GOOD{n:05d},", f"=BAD{n:05d},x"]
    client.post(
        f"{reverse('admin:imports_import_add')}?pool={pool.pk}",
        {"kind": "upload", "upload-file": csv_upload("\n".join(lines) + "\n")},
    )
    job = Import.objects.get()
    import_run(import_id=job.pk)
    job.refresh_from_db()
    assert (job.codes_added, job.rows_rejected) == (rows, rows)
    return job


def expected_rows(rows: int) -> list[list[str]]:
    # Row 1 is the header; a bad row n is the file's row 2n + 3, its formula escaped.
    return [list(REJECTED_HEADER)] + [
        [f"'=BAD{n:05d}", "x", "", "", "", f"Row {2 * n + 3}, Issue-start: {BAD_DATE}"]
        for n in range(rows)
    ]


def report(client, job):
    return client.get(reverse("admin:imports_import_change", args=[job.pk])).content.decode()


def start(client, job, file_format):
    url = reverse("admin:imports_import_rejected", args=[job.pk, file_format])
    response = client.post(url)
    export = CodeExport.objects.order_by("-id").first()
    assert response.status_code == 302, response.content[:300]
    assert response.url == reverse("admin:pools_codeexport_change", args=[export.pk])
    return export


def test_past_the_limit_the_report_offers_an_export_job_whose_file_has_every_row_escaped(
    manager_client, monkeypatch, settings
):
    monkeypatch.setattr(export_services, "EXPORT_AT_ONCE_MAX", 4)
    settings.EXPORT_CHUNK_ROWS = 3
    job = imported_with_rejections(manager_client, 5)
    url = reverse("admin:imports_import_rejected", args=[job.pk, "csv"])

    page = report(manager_client, job)
    assert "written in the background" in page and f'action="{url}"' in page
    # A link followed (a GET) starts nothing: back to the report, whose buttons post.
    assert manager_client.get(url).url == reverse("admin:imports_import_change", args=[job.pk])
    assert not CodeExport.objects.exists()

    as_csv = start(manager_client, job, "csv")
    as_xlsx = start(manager_client, job, "xlsx")
    for export in (as_csv, as_xlsx):
        code_export_run(export_id=export.pk)
        export.refresh_from_db()
        assert (export.status, export.rows_done, export.rows_total) == ("completed", 5, 5)
        assert (export.source, export.pool_id, export.filters) == (
            "rejected_rows",
            job.pool_id,
            {"import": job.pk},
        )
    assert as_csv.file_name == f"import-{job.pk}-rejected-rows.csv"

    page = manager_client.get(reverse("admin:pools_codeexport_change", args=[as_csv.pk]))
    assert f"the rejected rows of import #{job.pk}" in page.content.decode()
    download = manager_client.get(reverse("admin:pools_codeexport_download", args=[as_csv.pk]))
    assert csv_rows(b"".join(download.streaming_content)) == expected_rows(5)
    download = manager_client.get(reverse("admin:pools_codeexport_download", args=[as_xlsx.pk]))
    workbook = load_workbook(io.BytesIO(b"".join(download.streaming_content)))
    assert workbook.sheetnames == ["Rejected rows"]
    got = [
        ["" if c is None else c for c in row] for row in workbook.active.iter_rows(values_only=True)
    ]
    assert got == expected_rows(5)


def test_up_to_the_limit_the_rows_are_sent_at_once(manager_client, monkeypatch):
    monkeypatch.setattr(export_services, "EXPORT_AT_ONCE_MAX", 5)
    job = imported_with_rejections(manager_client, 5)

    assert "written in the background" not in report(manager_client, job)
    response = manager_client.get(reverse("admin:imports_import_rejected", args=[job.pk, "csv"]))
    assert csv_rows(b"".join(response.streaming_content)) == expected_rows(5)
    assert not CodeExport.objects.exists()


def test_the_one_who_asked_gets_the_link_to_the_rejected_rows(
    client, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(export_services, "EXPORT_AT_ONCE_MAX", 1)
    client.force_login(make_manager(email="asker@example.com"))
    job = imported_with_rejections(client, 2)
    mail.outbox.clear()  # the import's own notice

    # Tasks run eagerly here: the job is queued, run, and announced as the request commits.
    with django_capture_on_commit_callbacks(execute=True):
        export = start(client, job, "csv")

    (message,) = mail.outbox
    assert (
        message.subject
        == f"Export #{export.pk} of the rejected rows of import #{job.pk}: Completed"
    )
    assert "Rows written: 2." in message.body
    assert reverse("admin:pools_codeexport_download", args=[export.pk]) in message.body


@pytest.mark.parametrize("limit", [1, 10])  # as a job, and at once
def test_staff_who_may_not_view_codes_get_no_rejected_rows(client, monkeypatch, limit):
    """Rejected rows hold codes: the codes' export rule, whatever their number."""
    monkeypatch.setattr(export_services, "EXPORT_AT_ONCE_MAX", limit)
    client.force_login(make_manager())
    job = imported_with_rejections(client, 2)
    assert '<td><code class="shortened" title="x">x</code></td>' in report(client, job)
    outsider = make_staff("outsider")
    outsider.groups.clear()
    outsider.user_permissions.add(*Permission.objects.filter(codename="view_import"))
    client.force_login(outsider)

    page = report(client, job)
    assert (
        "You may not download the rejected rows, nor see their values here: they hold codes "
        "of this pool." in page
    )
    # The rows are listed with their reasons, not their values.
    assert '<code class="shortened"' not in page and "Value</th>" not in page
    assert "<tr><td>3</td><td>Issue-start</td><td>“x” is not a date" in page
    url = reverse("admin:imports_import_rejected", args=[job.pk, "csv"])
    assert client.post(url).status_code == client.get(url).status_code == 403
    assert not CodeExport.objects.exists()


def test_the_export_waits_for_the_import_to_end(manager_client, monkeypatch):
    monkeypatch.setattr(export_services, "EXPORT_AT_ONCE_MAX", 1)
    job = imported_with_rejections(manager_client, 2)
    Import.objects.filter(pk=job.pk).update(status=Import.Status.RUNNING)

    assert "can be exported once the import has ended" in report(manager_client, job)
    response = manager_client.post(reverse("admin:imports_import_rejected", args=[job.pk, "csv"]))
    assert response.url == reverse("admin:imports_import_change", args=[job.pk])
    assert not CodeExport.objects.exists()


def test_a_job_killed_after_a_chunk_goes_on_without_repeating_a_row(
    manager_client, monkeypatch, settings
):
    monkeypatch.setattr(export_services, "EXPORT_AT_ONCE_MAX", 1)
    settings.EXPORT_CHUNK_ROWS = 2
    job = imported_with_rejections(manager_client, 7)
    export = start(manager_client, job, "csv")
    commit = export_services._commit_chunk
    calls = []

    def killed_on_the_third(held, **progress):
        calls.append(progress)
        if len(calls) == 3:
            raise SystemExit("killed")  # its third chunk is in the file, unrecorded
        return commit(held, **progress)

    monkeypatch.setattr(export_services, "_commit_chunk", killed_on_the_third)
    with pytest.raises(SystemExit):
        code_export_run(export_id=export.pk)
    monkeypatch.setattr(export_services, "_commit_chunk", commit)
    export.refresh_from_db()
    assert (export.status, export.rows_done) == ("running", 4)
    CodeExport.objects.filter(pk=export.pk).update(heartbeat_at=None, status="queued")

    code_export_run(export_id=export.pk)

    export.refresh_from_db()
    assert (export.status, export.rows_done, export.attempts) == ("completed", 7, 2)
    assert csv_rows(export.file.read()) == expected_rows(7)


@pytest.mark.parametrize("removed_after_chunks", [0, 1])
def test_an_import_removed_before_its_export_ends_fails_the_export_saying_so(
    manager_client, monkeypatch, settings, removed_after_chunks
):
    monkeypatch.setattr(export_services, "EXPORT_AT_ONCE_MAX", 1)
    settings.EXPORT_CHUNK_ROWS = 2
    job = imported_with_rejections(manager_client, 5)
    export = start(manager_client, job, "csv")
    commit = export_services._commit_chunk

    def import_removed_after_the_first_chunk(held, **progress):
        done = commit(held, **progress)
        Rejection.objects.filter(job=job).delete()
        return done

    if removed_after_chunks:
        monkeypatch.setattr(export_services, "_commit_chunk", import_removed_after_the_first_chunk)
    else:
        Import.objects.filter(pk=job.pk).delete()
    code_export_run(export_id=export.pk)

    export.refresh_from_db()
    assert export.status == "failed"
    assert export.message == (
        f"The export failed: the rejected rows of import #{job.pk} were removed. "
        "Start it again from the import's report."
    )


@hypothesis_settings(max_examples=40, deadline=None)
@given(
    row_numbers=st.lists(st.integers(min_value=2, max_value=30), max_size=25),
    page=st.integers(min_value=1, max_value=7),
)
def test_pages_of_rejected_rows_join_into_the_download(row_numbers, page):
    """Paged by (row number, id), whatever the rows' order in the table and the page size,
    every rejected row comes exactly once, in the order of the in-request download."""
    pool = make_pool()
    job = Import.objects.create(pool=pool, source=Import.Source.TEXT)
    other = Import.objects.create(pool=pool, source=Import.Source.TEXT)
    Rejection.objects.bulk_create(
        Rejection(job=job, row_number=n, reason=f"r{i}", cells=[f"C{i}"])
        for i, n in enumerate(row_numbers)
    )
    Rejection.objects.create(job=other, row_number=2, reason="other", cells=["X"])

    paged, after = [], None
    while chunk := rejected_rows_after({"import": job.pk}, after, page):
        assert len(chunk) <= page
        paged += [cells for _, cells in chunk]
        after = chunk[-1][0]

    assert paged == list(rejected_rows(job))[1:]
    assert sorted(row[0] for row in paged) == sorted(f"C{i}" for i in range(len(row_numbers)))


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_imports_then_exports_the_rejected_rows(client, worker_factory, monkeypatch):
    """Upload, import and export by a Celery worker process on the local Redis and PostgreSQL;
    the download is the file's rejected rows, row for row."""
    monkeypatch.setattr(export_services, "EXPORT_AT_ONCE_MAX", 10)
    worker_factory(EXPORT_CHUNK_ROWS=7)
    client.force_login(make_manager())
    pool = make_pool()
    lines = ["Code,Issue-start"] + [f"GOOD{n:05d},\n=BAD{n:05d},x" for n in range(40)]
    client.post(
        f"{reverse('admin:imports_import_add')}?pool={pool.pk}",
        {"kind": "upload", "upload-file": csv_upload("\n".join(lines) + "\n")},
    )
    job = Import.objects.get()
    wait_for(lambda: finished(job), timeout=60, what="the import")

    export = start(client, job, "csv")
    wait_for(lambda: finished(export), timeout=60, what="the export")

    assert (export.status, export.rows_done) == ("completed", 40), export.message
    download = client.get(reverse("admin:pools_codeexport_download", args=[export.pk]))
    assert csv_rows(b"".join(download.streaming_content)) == expected_rows(40)
