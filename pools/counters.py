"""A pool's code counts by status, kept in counter rows (see PoolCounter) instead of COUNT(*)."""

import random

from django.db import connection

from .models import PoolCounter

# Rows per pool over which code counts are spread; see PoolCounter.
COUNTER_SHARDS = 8


def counter_shard() -> int:
    """Return the counter row a writer adds to: spread, so concurrent writers rarely queue."""
    return random.randrange(COUNTER_SHARDS)


def pool_counts_add(
    *,
    pool_id: int,
    available: int = 0,
    issued: int = 0,
    redeemed: int = 0,
    expired: int = 0,
    withdrawn: int = 0,
):
    """Add the given deltas to a pool's code counts (one per code status, named like it),
    inside the caller's transaction.

    Call it in the same transaction as the change of codes it counts.
    """
    table = connection.ops.quote_name(PoolCounter._meta.db_table)
    # Django's upsert (bulk_create update_conflicts) can only overwrite, not add; both PostgreSQL
    # and SQLite accept this statement.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} "
            "(pool_id, shard, available, issued, redeemed, expired, withdrawn) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (pool_id, shard) DO UPDATE SET "
            f"available = {table}.available + excluded.available, "
            f"issued = {table}.issued + excluded.issued, "
            f"redeemed = {table}.redeemed + excluded.redeemed, "
            f"expired = {table}.expired + excluded.expired, "
            f"withdrawn = {table}.withdrawn + excluded.withdrawn",
            [pool_id, counter_shard(), available, issued, redeemed, expired, withdrawn],
        )
