"""Export jobs run by a real Celery worker process on the local Redis and PostgreSQL."""

import csv
import io

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse
from openpyxl import load_workbook

from pools import export_services
from pools.models import Code, CodeExport
from tests.factories import finished, make_codes, make_manager, make_pool, make_staff, make_viewer
from tests.worker import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def start_from_the_list(client, file_format, **filters):
    response = client.post(reverse("admin:pools_code_export", args=[file_format]), filters)
    assert response.status_code == 302, response.content[:500]
    return CodeExport.objects.order_by("-id").first()


def test_csv_and_xlsx_exports_by_the_worker_follow_the_filter_and_escape_formulas(
    client, worker_factory, monkeypatch
):
    monkeypatch.setattr(export_services, "EXPORT_AT_ONCE_MAX", 2)
    worker_factory(EXPORT_CHUNK_ROWS=2)
    pool = make_pool()
    make_codes(pool, ["=HYPERLINK(1)", "@SUM", "PLAIN", "OTHER"])
    Code.objects.filter(code__in=["=HYPERLINK(1)", "PLAIN", "@SUM"]).update(
        status=Code.Status.ISSUED, issued_to="+cust"
    )
    client.force_login(make_manager())
    filters = {"pool__id__exact": pool.pk, "status__exact": "issued"}

    as_csv = start_from_the_list(client, "csv", **filters)
    as_xlsx = start_from_the_list(client, "xlsx", **filters)
    wait_for(lambda: finished(as_csv) and finished(as_xlsx), timeout=60, what="the exports")

    assert as_csv.status == as_xlsx.status == CodeExport.Status.COMPLETED, as_csv.message
    client.force_login(make_viewer())
    got = client.get(reverse("admin:pools_codeexport_download", args=[as_csv.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(got.streaming_content).decode("utf-8-sig"))))
    assert [row[:4] for row in rows[1:]] == [
        ["'=HYPERLINK(1)", pool.slug, "Issued", "'+cust"],
        ["'@SUM", pool.slug, "Issued", "'+cust"],
        ["PLAIN", pool.slug, "Issued", "'+cust"],
    ]
    got = client.get(reverse("admin:pools_codeexport_download", args=[as_xlsx.pk]))
    sheet = load_workbook(io.BytesIO(b"".join(got.streaming_content))).active
    assert [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)] == [
        "'=HYPERLINK(1)",
        "'@SUM",
        "PLAIN",
    ]

    # Staff who may see codes and exports, but not pools, cannot download.
    outsider = make_staff("outsider")
    outsider.groups.clear()
    outsider.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_code", "view_codeexport"])
    )
    client.force_login(outsider)
    download = reverse("admin:pools_codeexport_download", args=[as_csv.pk])
    assert client.get(download).status_code == 403


ROWS = 300_000


def test_whole_worker_killed_mid_export_is_taken_over_and_the_file_is_whole(worker_factory):
    knobs = {"EXPORT_CHUNK_ROWS": 5000, "EXPORT_HEARTBEAT_TIMEOUT": 3}
    pool = make_pool()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Code._meta.db_table} (pool_id, code, status, issued_to, times_redeemed)"
            " SELECT %s, 'K' || lpad(n::text, 7, '0'), 'available', '', 0"
            " FROM generate_series(1, %s) n",
            [pool.pk, ROWS],
        )
    worker = worker_factory(**knobs)
    export = export_services.code_export_start(filters={"pool": pool.pk}, file_format="csv")

    def mid_way():
        export.refresh_from_db()
        return export.status == CodeExport.Status.RUNNING and 0 < export.rows_done < ROWS // 2

    wait_for(mid_way, timeout=60, what="the export to be under way", interval=0.05)
    worker.kill()
    export.refresh_from_db()
    assert export.status == CodeExport.Status.RUNNING
    worker_factory(**knobs)

    wait_for(lambda: finished(export), timeout=120, what="the new worker to finish the export")
    assert (export.status, export.attempts) == (CodeExport.Status.COMPLETED, 2)
    with export.file.open("rb") as file:
        rows = list(csv.reader(io.StringIO(file.read().decode("utf-8-sig"))))
    codes = [row[0] for row in rows[1:]]
    assert len(codes) == export.rows_done == ROWS
    assert codes == [f"K{n:07d}" for n in range(1, ROWS + 1)]
