"""Admin pages a manager opens, on a pool of 20,000,000 codes: each page's median time.

    make bench-admin             (or: .venv/bin/python bench/admin_bench.py)
    make bench-tiny              (every benchmark at a tiny size, as CI runs them)

Needs the local PostgreSQL; uses the benchmarks' own database (bench/common.py) and its pool
of BENCH_POOL_CODES codes (default 20,000,000; tiny 20,000), built in SQL once and kept
(bench/big_pool.py), beside a few small pools. Each page is requested through Django's test
client as a superuser (DEBUG off, in this process: the server's own time, no network), once to
warm up, then BENCH_PAGE_REPEAT times (default 7; at least 3). Figure per page: its median in
milliseconds, target at most 300.
"""

import os
import statistics
import sys
import time

import common

POOL_CODES = common.size("BENCH_POOL_CODES", 20_000_000, 20_000)
PAGE_REPEAT = max(3, int(os.environ.get("BENCH_PAGE_REPEAT", "7")))

common.setup(
    DJANGO_DEBUG="0",
    DJANGO_SECRET_KEY="bench",
    DJANGO_ALLOWED_HOSTS="testserver",
    STATIC_ROOT=str(common.CACHE / "static"),
)

from big_pool import big_pool  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from imports.models import Import  # noqa: E402
from pools.models import Code, CodeExport  # noqa: E402


def pages(pool) -> dict[str, str]:
    code = Code.objects.filter(pool=pool).order_by("id")[POOL_CODES // 3 :][:1].get()
    export = CodeExport.objects.filter(pool=pool).first() or CodeExport.objects.create(
        pool=pool, file_format="csv", filters={"pool": pool.pk}, rows_total=POOL_CODES
    )
    codes = reverse("admin:pools_code_changelist")
    in_pool = f"{codes}?pool__id__exact={pool.pk}"
    found = {
        "campaigns": reverse("admin:pools_campaign_changelist"),
        "campaign_page": reverse("admin:pools_campaign_change", args=[pool.campaign_id]),
        "pools": reverse("admin:pools_pool_changelist"),
        "pool_page": reverse("admin:pools_pool_change", args=[pool.pk]),
        "codes_all": codes,
        "codes_of_pool": in_pool,
        **{
            f"codes_status_{status}": f"{in_pool}&status__exact={status}"
            for status in Code.Status.values
        },
        **{
            f"codes_status_{status}_all_pools": f"{codes}?status__exact={status}"
            for status in Code.Status.values
        },
        "codes_page_50": f"{in_pool}&p=50",
        "search_code": f"{in_pool}&q={code.code}",
        "search_code_all_pools": f"{codes}?q={code.code}",
        "search_missing": f"{in_pool}&q=NO-SUCH-CODE",
        "code_page": reverse("admin:pools_code_change", args=[code.pk]),
        "import_page": reverse("admin:imports_import_add") + f"?pool={pool.pk}",
        "imports": reverse("admin:imports_import_changelist") + f"?pool__id__exact={pool.pk}",
        "export_csv_page": reverse("admin:pools_code_export", args=["csv"])
        + f"?pool__id__exact={pool.pk}",
        "export_xlsx_page": reverse("admin:pools_code_export", args=["xlsx"])
        + f"?pool__id__exact={pool.pk}&status__exact=available",
        "exports": reverse("admin:pools_codeexport_changelist"),
        "export_job_page": reverse("admin:pools_codeexport_change", args=[export.pk]),
    }
    job = Import.objects.filter(pool=pool).first()
    if job is not None:
        found["import_report"] = reverse("admin:imports_import_change", args=[job.pk])
    return found


def main() -> int:
    # DEBUG off, as in production: pages link the collected, hashed static files.
    call_command("collectstatic", "--noinput", verbosity=0)
    pool = big_pool(POOL_CODES, slug=f"bench-{common.label(POOL_CODES)}")
    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    print(
        f"Admin pages on a pool of {POOL_CODES:,} codes; median of {PAGE_REPEAT} requests each",
        flush=True,
    )
    for name, url in pages(pool).items():
        response = client.get(url)
        assert response.status_code == 200, (name, url, response.status_code)
        times = []
        for _ in range(PAGE_REPEAT):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (name, url, response.status_code)
        print(f"{name}: median {statistics.median(times):.0f} ms  ({url})", flush=True)
        common.figure(f"admin_{name}_ms", times, "<=", 300)
    return common.report()


if __name__ == "__main__":
    sys.exit(main())
