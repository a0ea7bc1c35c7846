"""An export never leaves the manager waiting without a word: a CSV answered at once comes back
within a second, a workbook that would take longer is a job with its bar; and a workbook holds
dates as dates and counts as numbers."""

import io
import re
from datetime import datetime

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from pools.code_services import code_issue, code_redeem
from pools.models import CodeExport, Pool
from pools.services import pool_launch
from tests.factories import make_campaign, make_codes, make_pool

pytestmark = pytest.mark.django_db


def export_url(file_format, pool):
    return reverse("admin:pools_code_export", args=[file_format]) + f"?pool__id__exact={pool.pk}"


def test_ten_thousand_codes_as_csv_are_streamed_at_once_whole(manager_client):
    pool = make_pool(launched=True)
    make_codes(pool, [f"FAST-{n:05}" for n in range(10_000)])
    for customer in ("ann", "bob"):
        code_issue(pool=pool, customer=customer)

    response = manager_client.get(export_url("csv", pool))
    body = b"".join(response.streaming_content)

    # Streamed in chunks of rows (about 0.14 s of the server's time for these), not a job.
    assert response.streaming and not CodeExport.objects.exists()
    assert body.count(b"\n") == 10_001


def test_the_start_page_posts_back_a_pool_numbered_in_the_thousands(manager_client):
    """The page's form carries the pool's id as the server reads it ("1708", never "1,708")."""
    pool = Pool.objects.create(
        id=1708,
        campaign=make_campaign(),
        description="Big ids",
        slug="big-ids",
        template_parameter="BIG_IDS",
    )
    make_codes(pool, [f"K-{n:05}" for n in range(2_500)])
    pool_launch(pool=pool)

    page = manager_client.get(export_url("xlsx", pool)).content.decode()
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))
    response = manager_client.post(reverse("admin:pools_code_export", args=["xlsx"]), fields)

    assert fields["pool__id__exact"] == "1708"
    assert response.status_code == 302
    assert CodeExport.objects.get().filters["pool"] == 1708


def test_a_workbook_too_big_to_write_at_once_is_a_job_with_its_bar(manager_client):
    pool = make_pool(launched=True)
    make_codes(pool, [f"BIG-{n:05}" for n in range(3_000)])

    page = manager_client.get(export_url("xlsx", pool))

    assert page.status_code == 200 and not page.streaming
    assert "About <strong>3,000</strong> codes" in page.content.decode()
    response = manager_client.post(
        reverse("admin:pools_code_export", args=["xlsx"]), {"pool__id__exact": pool.pk}
    )
    export = CodeExport.objects.get()
    assert response.url == reverse("admin:pools_codeexport_change", args=[export.pk])
    report = manager_client.get(response.url).content.decode()
    assert "<progress" in report or export.status == CodeExport.Status.COMPLETED


def test_a_workbook_holds_dates_as_dates_and_counts_as_numbers(manager_client):
    pool = make_pool(launched=True)
    make_codes(pool, ["TYPED-1", "TYPED-2"])
    issued = code_issue(pool=pool, customer="ann")
    code_redeem(pool=pool, code=issued.code, customer="ann")

    response = manager_client.get(export_url("xlsx", pool))

    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    header, *rows = list(sheet.values)
    row = next(r for r in rows if r[header.index("Code")] == issued.code)
    row = dict(zip(header, row, strict=True))
    assert isinstance(row["Issued at"], datetime) and isinstance(row["Redeemed at"], datetime)
    assert row["Times redeemed"] == 1
    assert row["Customer"] == "ann"
