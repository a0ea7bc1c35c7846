import csv
import io

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from imports.engine import import_run
from imports.models import Import
from pools.models import Code
from tests.factories import make_codes, make_pool
from tests.imports.files import csv_upload

pytestmark = pytest.mark.django_db


def add_codes_url(pool):
    return f"{reverse('admin:imports_import_add')}?pool={pool.pk}"


def post_upload(client, pool, upload):
    return client.post(add_codes_url(pool), {"kind": "upload", "upload-file": upload}, follow=True)


def test_pool_page_offers_to_add_codes_and_the_template(manager_client):
    pool = make_pool()

    page = manager_client.get(reverse("admin:pools_pool_change", args=[pool.pk])).content.decode()

    assert add_codes_url(pool) in page
    assert reverse("admin:imports_template", args=["xlsx"]) in page


def test_viewer_is_not_offered_to_add_codes_and_cannot(viewer_client):
    pool = make_pool()

    page = viewer_client.get(reverse("admin:pools_pool_change", args=[pool.pk])).content.decode()

    assert add_codes_url(pool) not in page
    assert viewer_client.get(add_codes_url(pool)).status_code == 403


def test_upload_queues_an_import_shown_in_the_history_and_report(
    manager_client, django_capture_on_commit_callbacks
):
    pool = make_pool()

    with django_capture_on_commit_callbacks(execute=True):
        response = post_upload(
            manager_client, pool, csv_upload("Code,Issue-end\nOK1,\nBAD CODE,\nOK2,nope\n")
        )

    job = Import.objects.get()
    page = response.content.decode()
    assert f"Import #{job.pk} is queued" in page
    # The manager lands on the report, which follows the import's progress.
    assert response.redirect_chain[-1][0] == reverse("admin:imports_import_change", args=[job.pk])
    report = manager_client.get(reverse("admin:imports_import_change", args=[job.pk]))
    text = report.content.decode()
    assert "Completed with errors" in text
    assert "codes.csv" in text
    assert "“nope” is not a date" in text
    assert report.context["job"].codes_added == 1
    assert report.context["job"].created_by.username == "manager"


def test_rejected_rows_download_in_template_columns_with_reason(manager_client):
    pool = make_pool()
    post_upload(manager_client, pool, csv_upload("Code,Issue-start\n=HYPERLINK(1),\nOK,x\n"))
    job = Import.objects.get()
    import_run(import_id=job.pk)

    response = manager_client.get(reverse("admin:imports_import_rejected", args=[job.pk, "csv"]))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))

    header = ["Code", "Issue-start", "Issue-end", "Available-from", "Available-till", "Reason"]
    reason = (
        "Row 3, Issue-start: “x” is not a date: use YYYY-MM-DD HH:MM, DD.MM.YYYY HH:MM or "
        "DD/MM/YYYY."
    )
    assert rows == [header, ["OK", "x", "", "", "", reason]]
    xlsx = manager_client.get(reverse("admin:imports_import_rejected", args=[job.pk, "xlsx"]))
    sheet = load_workbook(io.BytesIO(b"".join(xlsx.streaming_content))).active
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [
        header,
        ["OK", "x", None, None, None, reason],
    ]


def test_templates_download(manager_client):
    csv_response = manager_client.get(reverse("admin:imports_template", args=["csv"]))
    text = b"".join(csv_response.streaming_content).decode("utf-8-sig")
    assert text.splitlines()[0] == "Code,Issue-start,Issue-end,Available-from,Available-till"
    assert len(text.splitlines()) == 2

    xlsx_response = manager_client.get(reverse("admin:imports_template", args=["xlsx"]))
    workbook = load_workbook(io.BytesIO(xlsx_response.content))
    assert [c.value for c in workbook["Codes"][1]] == [
        "Code",
        "Issue-start",
        "Issue-end",
        "Available-from",
        "Available-till",
    ]
    assert "YYYY-MM-DD" in " ".join(str(r[0].value) for r in workbook["How to fill in"].iter_rows())


def test_paste_then_generation_is_no_longer_offered(manager_client):
    pool = make_pool()
    assert 'id="generate-form"' in manager_client.get(add_codes_url(pool)).content.decode()

    manager_client.post(add_codes_url(pool), {"kind": "paste", "paste-text": "P1\nP2"})

    page = manager_client.get(add_codes_url(pool)).content.decode()
    assert 'id="generate-form"' not in page
    assert "no longer offers generation" in page
    forged = manager_client.post(
        add_codes_url(pool),
        {
            "kind": "generate",
            "generate-count": 5,
            "generate-length": 8,
            "generate-alphabet": "ABCDEFGH",
        },
    )
    assert "no longer offers generation" in forged.content.decode()
    assert Import.objects.filter(source="generation").count() == 0


def test_generation_from_the_admin_and_its_refusal(manager_client):
    pool = make_pool()
    data = {"kind": "generate", "generate-length": 4, "generate-alphabet": "ABCD"}

    refused = manager_client.post(add_codes_url(pool), {**data, "generate-count": 100})
    assert refused.status_code == 200
    assert "Choose a longer length" in refused.content.decode()

    manager_client.post(add_codes_url(pool), {**data, "generate-length": 10, "generate-count": 20})
    job = Import.objects.get()
    assert job.source == "generation" and job.generation["count"] == 20


def test_progress_endpoint(manager_client):
    pool = make_pool()
    post_upload(manager_client, pool, csv_upload("Code\nA\n"))
    job = Import.objects.get()

    data = manager_client.get(reverse("admin:imports_import_progress", args=[job.pk])).json()

    assert data["status"] in {"queued", "completed"}
    assert set(data) >= {"percent", "codes_added", "finished", "status_display"}


def test_failed_import_can_be_run_again_from_its_report(manager_client):
    pool = make_pool()
    post_upload(manager_client, pool, csv_upload("Code\nA\n"))
    job = Import.objects.get()
    # As the stale-heartbeat recovery leaves an import whose workers kept dying.
    Import.objects.filter(pk=job.pk).update(
        status="failed",
        message="The worker stopped during this job 3 times; what it finished is kept. "
        "Run it again to go on.",
    )
    report = manager_client.get(reverse("admin:imports_import_change", args=[job.pk]))
    assert reverse("admin:imports_import_rerun", args=[job.pk]) in report.content.decode()

    manager_client.post(reverse("admin:imports_import_rerun", args=[job.pk]))

    job.refresh_from_db()
    assert (job.status, job.message, job.finished_at) == ("queued", "", None)


def test_bad_upload_form_says_what_is_wrong(manager_client, settings):
    settings.IMPORT_MAX_FILE_SIZE = 3
    pool = make_pool()

    response = post_upload(manager_client, pool, csv_upload("Code\nA\n"))

    assert "files up to 3" in response.content.decode()
    assert not Import.objects.exists()


def test_codes_export_escapes_formulas_and_follows_the_list_filters(manager_client):
    pool = make_pool()
    make_codes(pool, ["=1+2", "@SUM", "PLAIN"])
    Code.objects.filter(code="PLAIN").update(status=Code.Status.ISSUED, issued_to="-cust")

    response = manager_client.get(
        reverse("admin:pools_code_export", args=["csv"]), {"pool__id__exact": pool.pk}
    )
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))

    assert rows[0][:4] == ["Code", "Pool ID", "Status", "Customer"]
    assert sorted(r[0] for r in rows[1:]) == ["'=1+2", "'@SUM", "PLAIN"]
    assert ["PLAIN", pool.slug, "Issued", "'-cust"] in [r[:4] for r in rows]

    issued = manager_client.get(
        reverse("admin:pools_code_export", args=["xlsx"]),
        {"pool__id__exact": pool.pk, "status__exact": "issued"},
    )
    sheet = load_workbook(io.BytesIO(b"".join(issued.streaming_content))).active
    assert [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["PLAIN"]
    # The file's name says the pool and the filter.
    assert f'filename="codes-{pool.slug}-status-issued.xlsx"' in issued["Content-Disposition"]


WHOLE_FILE_PROBLEMS = {
    "png": ("logo.png", b"\x89PNG\r\n\x1a\n" + bytes(200)),
    "text-named-xlsx": ("codes.xlsx", b"Code\nA1\n"),
    "header-only": ("codes.csv", b"Code\n"),
    "empty-sheet-workbook": ("codes.ods", None),
}


@pytest.mark.parametrize("problem", sorted(WHOLE_FILE_PROBLEMS))
def test_upload_refuses_a_bad_file_on_the_page_with_the_reports_message(manager_client, problem):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from imports.services import import_file_start
    from tests.imports.files import ods_bytes

    name, data = WHOLE_FILE_PROBLEMS[problem]
    data = data if data is not None else ods_bytes({"Notes": [[None], [""]]})
    pool = make_pool()

    response = post_upload(manager_client, pool, SimpleUploadedFile(name, data))

    assert not Import.objects.exists()
    errors = response.context["forms"]["upload"].errors["file"]
    # The worker, given the same file by another way, fails it with the same message.
    job = import_file_start(pool=pool, file=SimpleUploadedFile(name, data), inspect=False)
    import_run(import_id=job.pk)
    job.refresh_from_db()
    assert errors == [job.message]
    assert job.message.endswith("Fix the file and upload it again.")
    report = manager_client.get(reverse("admin:imports_import_change", args=[job.pk]))
    assert reverse("admin:imports_import_rerun", args=[job.pk]) not in report.content.decode()
    assert "Running this import again cannot help" in report.content.decode()


def test_upload_form_names_every_accepted_format_and_asks_the_date_order(manager_client):
    pool = make_pool()

    page = manager_client.get(add_codes_url(pool)).content.decode()

    assert 'accept=".csv,.txt,.xlsx,.xlsm,.xlsb,.xls,.ods"' in page
    assert "XLSX, XLSM, XLSB, XLS" in page and "ODS" in page
    response = manager_client.post(
        add_codes_url(pool),
        {"kind": "upload", "upload-file": csv_upload("Code,Issue-end\nA,03/04/2026\n")},
        follow=True,
    )
    # Asked on the file's preview, not guessed.
    assert "could be day-first or month-first" in response.content.decode()
    assert not Import.objects.exists()
    manager_client.post(
        add_codes_url(pool),
        {
            "kind": "upload",
            "upload-file": csv_upload("Code,Issue-end\nA,03/04/2026\n"),
            "upload-date_order": "mdy",
        },
    )
    assert Import.objects.get().date_order == "mdy"


def test_queued_import_page_says_how_long_it_has_waited(manager_client):
    from datetime import timedelta

    from django.utils import timezone

    pool = make_pool()
    post_upload(manager_client, pool, csv_upload("Code\nA\n"))
    job = Import.objects.get()
    Import.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=7))

    page = manager_client.get(reverse("admin:imports_import_change", args=[job.pk]))

    assert "waiting for a worker for 7\xa0minutes" in page.content.decode()


def test_report_writes_row_numbers_without_a_thousands_separator(
    manager_client, django_capture_on_commit_callbacks
):
    pool = make_pool()
    rows = "".join(f"OK{n}\n" for n in range(2, 1502))
    with django_capture_on_commit_callbacks(execute=True):
        post_upload(manager_client, pool, csv_upload(f"Code\n{rows}BAD CODE\n"))

    job = Import.objects.get()
    assert job.rejections.get().row_number == 1502
    report = manager_client.get(reverse("admin:imports_import_change", args=[job.pk]))

    page = report.content.decode()
    assert "<td>1502</td>" in page and "1,502" not in page
