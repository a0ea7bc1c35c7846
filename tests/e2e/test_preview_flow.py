"""A manager checks a file before importing it, in a real browser: the preview reads it as the
import would (a title above a Russian header), the counts are read off the page, and the import
started from there gives the same counts in its report, run by a real worker."""

import pytest
from django.urls import reverse

from imports.models import Import, Upload
from pools.models import Code
from tests.factories import make_codes, make_manager, make_pool

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SPRING_CSV = (
    "Промокоды на весну 2026\n"
    "Промокод;Действует до\n"
    "ВЕСНА-1;31.12.2030\n"
    "ВЕСНА-2;\n"
    "СТАРЫЙ-1;\n"
    "ВЕСНА-1;\n"
    "ВЕСНА 3;\n"
    "ВЕСНА-4;когда-нибудь\n"
)


def test_manager_checks_a_file_reads_the_counts_and_starts_the_import(
    browser_page, live_server, live_worker, screenshot
):
    page = browser_page
    url = live_server.url
    make_manager("lea", email="lea@example.com")
    pool = make_pool(description="Spring codes")
    make_codes(pool, ["СТАРЫЙ-1"])

    page.goto(f"{url}/admin/")
    page.get_by_label("Username").fill("lea")
    page.get_by_label("Password").fill("secret-pass")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{url}{reverse('admin:imports_import_add')}?pool={pool.pk}")
    page.get_by_label("Template file").set_input_files(
        files=[{"name": "spring.csv", "mimeType": "text/csv", "buffer": SPRING_CSV.encode()}]
    )
    page.locator("#upload-form").get_by_role("button", name="Check the file").click()

    upload = Upload.objects.get()
    page.wait_for_url(f"**{reverse('admin:imports_upload_preview', args=[upload.pk])}")
    page.get_by_text("What the import would do").wait_for()
    summary = page.locator("table.preview-summary")
    assert "Code: column A (“Промокод”)" in summary.inner_text()
    assert "Available-till: column B (“Действует до”)" in summary.inner_text()
    assert "The header is on row 2: the row above it was skipped." in summary.inner_text()
    assert page.locator("[data-field=rows_read]").inner_text().startswith("6 = 2 would be added")
    counts = {
        name: page.locator(f"[data-field={name}]").inner_text()
        for name in ("would_add", "already_in_pool", "duplicates_in_file", "rejected", "skipped")
    }
    assert counts == {
        "would_add": "2",
        "already_in_pool": "1",
        "duplicates_in_file": "1",
        "rejected": "2",
        "skipped": "0",
    }
    assert page.locator("table.preview-rows tbody tr").count() == 3
    assert "“когда-нибудь” is not a date" in page.locator("table.preview-rejected").inner_text()
    assert not Import.objects.exists() and Code.objects.filter(pool=pool).count() == 1
    screenshot(page, "check-the-file", full_page=True)

    page.get_by_role("button", name="Start the import").click()
    job = Import.objects.get()
    page.wait_for_url(f"**{reverse('admin:imports_import_change', args=[job.pk])}")
    page.get_by_text(f"Import #{job.pk} is queued").wait_for()
    page.locator(".import-report .import-status-completed_with_errors").wait_for(timeout=60_000)
    page.locator(".import-ended").wait_for()
    assert page.locator("[data-field=codes_added]").inner_text() == counts["would_add"]
    assert page.locator("[data-field=rows_rejected]").inner_text() == "2"
    assert Code.objects.filter(pool=pool).count() == 3
