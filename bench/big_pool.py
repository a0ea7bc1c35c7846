"""A pool of millions of codes, built in SQL (generate_series) in the benchmarks' database and
kept there for the next run: building 20,000,000 codes row by row would take hours.

Its codes: half available, a quarter issued (to a customer, with a date), an eighth redeemed
and an eighth expired; every tenth has an Issue-end and an Available-till. Its counter rows
say the same, as imports would have left them.
"""

from django.db import connection, transaction
from django.utils import timezone

from pools.models import Campaign, Code, Pool, PoolCounter

STATUS_SQL = (
    "CASE WHEN n %% 2 = 0 THEN 'available' WHEN n %% 4 = 1 THEN 'issued'"
    " WHEN n %% 8 = 3 THEN 'redeemed' ELSE 'expired' END"
)
# What STATUS_SQL gives n = 1..codes, per status.


def _counts(codes: int) -> dict[str, int]:
    counts = {"available": codes // 2, "issued": (codes + 3) // 4}
    counts["redeemed"] = (codes + 5) // 8
    counts["expired"] = codes - sum(counts.values())
    return counts


def big_pool(codes: int, *, slug: str) -> Pool:
    """Return the launched pool `slug` with `codes` codes, building it if it is not there."""
    pool = Pool.objects.filter(slug=slug).first()
    if pool is not None and Code.objects.filter(pool=pool).count() == codes:
        return pool
    if pool is not None:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {Code._meta.db_table} WHERE pool_id = %s", [pool.pk])
        pool.counters.all().delete()
    else:
        campaign = Campaign.objects.create(name=f"Benchmark {slug}")
        pool = Pool.objects.create(
            campaign=campaign,
            slug=slug,
            template_parameter=slug.replace("-", "_").upper(),
            description=f"{codes:,} codes for the benchmarks",
            status=Pool.Status.ACTIVE,
            launched_at=timezone.now(),
        )
    print(f"  building the pool {slug} of {codes:,} codes in SQL (once; kept)", flush=True)
    step = 2_000_000
    for start in range(1, codes + 1, step):
        end = min(codes, start + step - 1)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {Code._meta.db_table} (pool_id, code, status, issued_to, issued_at,
                    redeemed_at, times_redeemed, issue_end, available_till)
                SELECT %(pool)s, 'B' || to_hex(n * 2654435761 %% 4294967296) || 'X' || n,
                    {STATUS_SQL},
                    CASE WHEN n %% 2 = 1 THEN 'customer-' || n ELSE '' END,
                    CASE WHEN n %% 2 = 1 THEN now() - interval '1 day' END,
                    CASE WHEN n %% 8 = 3 THEN now() END,
                    CASE WHEN n %% 8 = 3 THEN 1 ELSE 0 END,
                    CASE WHEN n %% 10 = 0 THEN now() + interval '30 days' END,
                    CASE WHEN n %% 10 = 0 THEN now() + interval '60 days' END
                FROM generate_series(%(start)s, %(end)s) n
                """,
                {"pool": pool.pk, "start": start, "end": end},
            )
        print(f"    {end:,} codes", flush=True)
    PoolCounter.objects.create(pool=pool, shard=0, **_counts(codes))
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {Code._meta.db_table}")
    return pool
