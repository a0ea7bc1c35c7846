"""A manager assigns codes to a customer list in a real browser, a real worker runs the job, and
the list comes back with a Code column."""

import csv
import io
from pathlib import Path

import pytest
from django.urls import reverse

from imports.models import Assignment
from pools.code_services import code_issue
from pools.models import Code, CodeIssue
from tests.factories import make_codes, make_manager, make_pool

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CUSTOMERS_CSV = (
    "Customer,Email\n"
    "ann,ann@example.com\n"
    "bob,bob@example.com\n"
    ",nobody@example.com\n"
    "cid,cid@example.com\n"
    "dan,dan@example.com\n"
)


def report_value(page, label: str) -> str:
    return page.locator("table.import-report tr", has_text=label).locator("td").inner_text()


def test_manager_assigns_codes_to_a_customer_list_and_downloads_it_with_codes(
    browser_page, live_server, live_worker
):
    page = browser_page
    url = live_server.url
    make_manager("ava", email="ava@example.com")
    pool = make_pool(launched=True, description="March newsletter")
    make_codes(pool, [f"MARCH-{n}" for n in range(1, 11)])
    held = code_issue(pool=pool, customer="ann")  # ann holds a code of the pool already

    page.goto(f"{url}/admin/")
    page.get_by_label("Username").fill("ava")
    page.get_by_label("Password").fill("secret-pass")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{url}{reverse('admin:pools_pool_change', args=[pool.pk])}")
    page.get_by_role("link", name="Assign to customers").click()
    page.get_by_label("Customer list").set_input_files(
        files=[{"name": "march.csv", "mimeType": "text/csv", "buffer": CUSTOMERS_CSV.encode()}]
    )
    page.get_by_role("button", name="Assign codes").click()

    job = Assignment.objects.get()
    page.wait_for_url(f"**{reverse('admin:imports_assignment_change', args=[job.pk])}")
    # The report follows the job (it reloads itself) until the worker has finished.
    page.get_by_role("link", name="Download the list with codes (CSV)").wait_for(timeout=60_000)
    assert report_value(page, "Status") == "Completed"
    assert report_value(page, "Customers read") == "4"
    assert report_value(page, "Codes issued") == "3"
    assert report_value(page, "Already held a code") == "1"
    assert report_value(page, "Rows rejected") == "1"
    assert report_value(page, "Left without a code") == "0"
    rejected = page.locator("h2:has-text('Rejected rows') + table tbody tr")
    assert rejected.count() == 1
    assert rejected.locator("td").first.inner_text() == "4"  # the row number in the file

    with page.expect_download() as download:
        page.get_by_role("link", name="Download the list with codes (CSV)").click()
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text("utf-8"))))

    assert rows[0] == ["Customer", "Email", "Code"]
    assert [row[:2] for row in rows[1:]] == [
        ["ann", "ann@example.com"],
        ["bob", "bob@example.com"],
        ["", "nobody@example.com"],
        ["cid", "cid@example.com"],
        ["dan", "dan@example.com"],
    ]
    codes = {row[0]: row[2] for row in rows[1:]}
    assert codes[""] == ""
    assert codes["ann"] == held.code
    issued = dict(CodeIssue.objects.filter(pool=pool).values_list("customer", "code__code"))
    assert {c: codes[c] for c in ("ann", "bob", "cid", "dan")} == issued
    assert len(set(issued.values())) == 4
    assert Code.objects.filter(pool=pool, status=Code.Status.ISSUED).count() == 4
