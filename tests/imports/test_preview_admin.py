"""The "Add codes" page's "Check the file" and the preview page: counts and rows before anything
is written, the manager's choices, "Start the import"."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from imports.engine import import_run
from imports.models import Import, Upload
from pools.models import Code
from tests.factories import make_codes, make_pool
from tests.imports.files import csv_upload

pytestmark = pytest.mark.django_db


def add_codes_url(pool):
    return f"{reverse('admin:imports_import_add')}?pool={pool.pk}"


def preview_url(upload):
    return reverse("admin:imports_upload_preview", args=[upload.pk])


def post_file(client, pool, upload, action, **fields):
    data = {"kind": "upload", "upload-file": upload, "action": action, **fields}
    return client.post(add_codes_url(pool), data, follow=True)


def choose(client, upload, **choices):
    return client.post(preview_url(upload), {"action": "check", **choices}, follow=True)


def test_check_the_file_shows_what_the_import_would_do_and_writes_nothing(manager_client):
    pool = make_pool()
    make_codes(pool, ["OLD1"])
    upload = csv_upload(
        "Code;Issue-end\nNEW1;31.12.2026\nOLD1;\nNEW1;\nBAD CODE;\nNEW2;someday\nNEW3;\n"
    )

    response = post_file(manager_client, pool, upload, "check")

    staged = Upload.objects.get()
    assert response.redirect_chain[-1][0] == preview_url(staged)
    assert not Import.objects.exists() and Code.objects.count() == 1
    page = response.content.decode()
    assert "What the import would do" in page
    counts = response.context["preview"].counts
    assert (counts.rows_read, counts.would_add, counts.already_in_pool) == (6, 2, 1)
    assert (counts.duplicates_in_file, counts.rejected, counts.skipped) == (1, 2, 0)
    assert (
        "= 2 would be added + 1 already in the pool + 1 duplicates inside the file + 2 rejected "
        "+ 0 skipped" in page
    )
    assert "<li>Code: column A (“Code”)</li>" in page
    assert "2026-12-31 23:59:59.999999" in page  # NEW1's Issue-end as it would be stored
    assert "already in the pool" in page
    assert "“someday” is not a date" in page
    assert "The same code is in an earlier row." in page
    assert 'value="start"' in page


def test_columns_chosen_on_the_preview_are_checked_again_then_imported(manager_client):
    pool = make_pool()
    post_file(manager_client, pool, csv_upload("Promo;Valid\nA1;2026-01-01\nA2;x\n"), "check")
    staged = Upload.objects.get()
    page = manager_client.get(preview_url(staged))
    assert page.context["preview"].question == "columns"
    assert "Which columns hold the codes?" in page.content.decode()
    assert 'value="start"' not in page.content.decode()

    checked = choose(
        manager_client,
        staged,
        date_order="",
        encoding="utf-8",
        header_row="1",
        code="0",
        available_till="1",
    )

    preview = checked.context["preview"]
    assert preview.question == ""
    assert preview.columns == [
        ("Code", "column A (“Promo”)"),
        ("Available-till", "column B (“Valid”)"),
    ]
    assert (preview.counts.would_add, preview.counts.rejected) == (1, 1)
    started = manager_client.post(preview_url(staged), {"action": "start"}, follow=True)
    job = Import.objects.get()
    assert started.redirect_chain[-1][0] == reverse("admin:imports_import_change", args=[job.pk])
    assert f"Import #{job.pk} is queued" in started.content.decode()
    import_run(import_id=job.pk)
    job.refresh_from_db()
    assert (job.codes_added, job.rows_rejected, job.created_by.username) == (1, 1, "manager")
    assert job.column_mapping["columns"]["available_till"] == 1
    # Its preview now leads to the report.
    assert manager_client.get(preview_url(staged))["Location"].endswith(f"/{job.pk}/change/")


def test_the_same_column_twice_is_refused_on_the_form(manager_client):
    pool = make_pool()
    post_file(manager_client, pool, csv_upload("X1;2026-01-01\n"), "check")
    staged = Upload.objects.get()

    refused = choose(manager_client, staged, header_row="0", code="1", issue_end="1")

    assert "Code and Issue-end cannot both be read from column B." in refused.content.decode()
    staged.refresh_from_db()
    assert staged.column_mapping == {}


def test_import_of_a_headerless_two_column_file_asks_the_columns_instead_of_failing(
    manager_client,
):
    pool = make_pool()

    response = post_file(
        manager_client, pool, csv_upload("X1;2026-01-01\nX2;2026-02-01\n"), "import"
    )

    staged = Upload.objects.get()
    assert response.redirect_chain[-1][0] == preview_url(staged)
    assert not Import.objects.exists()
    page = response.content.decode()
    assert "“codes.csv” needs an answer before it can be imported: see below." in page
    assert "Which columns hold the codes?" in page
    assert '<th scope="col">B</th>' in page and "2026-02-01" in page
    # Forged, Start is refused while the question is open.
    refused = manager_client.post(preview_url(staged), {"action": "start"}, follow=True)
    assert "Answer the question first, then check the file again" in refused.content.decode()
    assert not Import.objects.exists()


def test_import_with_ambiguous_dates_asks_the_date_order_on_the_preview(manager_client):
    pool = make_pool()

    response = post_file(
        manager_client, pool, csv_upload("Code,Issue-end\nA,03/04/2026\n"), "import"
    )

    assert "Day or month first?" in response.content.decode()
    staged = Upload.objects.get()
    # The columns as the form offers them: those found.
    choose(
        manager_client,
        staged,
        date_order="mdy",
        encoding="utf-8",
        header_row="1",
        code="0",
        issue_end="1",
    )
    manager_client.post(preview_url(staged), {"action": "start"})
    job = Import.objects.get()
    assert (job.date_order, job.column_mapping) == ("mdy", {})  # the columns as found


def test_a_file_the_import_would_refuse_is_refused_on_the_upload_form(manager_client):
    pool = make_pool()

    response = post_file(manager_client, pool, SimpleUploadedFile("codes.csv", b"Code\n"), "check")

    assert response.context["forms"]["upload"].errors["file"] == [
        "“codes.csv” has a header but no rows of codes under it. Fix the file and upload it again."
    ]
    assert not Upload.objects.exists()


def test_only_managers_see_a_staged_upload(manager_client, viewer):
    from django.test import Client

    pool = make_pool()
    post_file(manager_client, pool, csv_upload("Code\nA\n"), "check")
    staged = Upload.objects.get()
    viewer_client = Client()
    viewer_client.force_login(viewer)

    assert viewer_client.get(preview_url(staged)).status_code == 403
    assert manager_client.get(preview_url(staged)).status_code == 200
    missing = reverse("admin:imports_upload_preview", args=[staged.pk + 1])
    assert manager_client.get(missing).status_code == 404


def test_the_encoding_question_shows_the_codes_each_way_and_the_answer_is_imported(
    manager_client,
):
    pool = make_pool()
    upload = SimpleUploadedFile("codes.csv", "Code\nКОД1\n".encode("cp1251"))

    response = post_file(manager_client, pool, upload, "upload")

    staged = Upload.objects.get()
    page = response.content.decode()
    assert response.context["preview"].question == "encoding"
    assert "<li>Windows-1251 (Cyrillic): КОД1</li>" in page
    assert "<li>Windows-1253 (Greek): ΚΞΔ1</li>" in page
    assert not Import.objects.exists()

    checked = choose(manager_client, staged, encoding="cp1251", date_order="")
    assert checked.context["preview"].question == ""
    started = manager_client.post(preview_url(staged), {"action": "start"}, follow=True)
    job = Import.objects.get()
    import_run(import_id=job.pk)

    assert started.redirect_chain[-1][0] == reverse("admin:imports_import_change", args=[job.pk])
    assert list(Code.objects.values_list("code", flat=True)) == ["КОД1"]
