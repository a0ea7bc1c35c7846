"""Write batches of clean rows into a pool's codes with set-based SQL: no query per row.

Every batch is added with ON CONFLICT DO NOTHING semantics, so loading the same rows twice
cannot create a duplicate; a row whose code is already there is reported, not lost silently.
"""

from dataclasses import dataclass, field

from django.db import connection
from django.utils import timezone

from pools.models import Code

from .validation import to_datetime

_CODE_TABLE = Code._meta.db_table
_STAGING_COLUMNS = "row_number, code, issue_start, issue_end, available_from, available_till"


@dataclass
class BatchResult:
    added: int = 0
    # (row_number, code) of rows whose code appears earlier in the same import.
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    already_in_pool: int = 0


def load_batch(*, pool_id: int, rows: list[tuple], watermark: int) -> BatchResult:
    """Add `rows` (row_number, code, issue_start, issue_end, available_from, available_till) to
    a pool, inside the caller's transaction. Dates are ISO 8601 text, as clean_row gives them.

    A code that collides with a code of id <= `watermark` was in the pool before the import;
    one that collides with a later code, or with an earlier row of the batch, is a duplicate.
    """
    if not rows:
        return BatchResult()
    if connection.vendor == "postgresql":
        return _load_batch_postgresql(pool_id, rows, watermark)
    return _load_batch_generic(pool_id, rows, watermark)


def _load_batch_postgresql(pool_id: int, rows: list[tuple], watermark: int) -> BatchResult:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS import_staging (row_number bigint, code text, "
            "issue_start timestamp, issue_end timestamp, available_from timestamp, "
            "available_till timestamp) ON COMMIT DELETE ROWS"
        )
        cursor.execute("TRUNCATE import_staging")
        # COPY is the fastest way into PostgreSQL; the staging table lets one INSERT … SELECT
        # then skip conflicts and report them.
        with cursor.cursor.copy(f"COPY import_staging ({_STAGING_COLUMNS}) FROM STDIN") as copy:
            copy.write(_copy_text(rows))
        # Writers in data-modifying CTEs do not see each other's rows, so `existing` below is the
        # pool as it was before this statement.
        cursor.execute(
            f"""
            WITH staged AS (
                SELECT row_number, code,
                       min(row_number) OVER (PARTITION BY code) AS first_row
                FROM import_staging
            ), inserted AS (
                INSERT INTO {_CODE_TABLE} (pool_id, code, status, issue_start, issue_end,
                    available_from, available_till, issued_to, times_redeemed)
                SELECT DISTINCT ON (code) %(pool)s, code, %(available)s,
                    issue_start AT TIME ZONE %(tz)s, issue_end AT TIME ZONE %(tz)s,
                    available_from AT TIME ZONE %(tz)s, available_till AT TIME ZONE %(tz)s, '', 0
                FROM import_staging
                ORDER BY code, row_number
                ON CONFLICT (code, pool_id) DO NOTHING
                RETURNING code
            ), not_added AS (
                SELECT s.row_number, s.code, s.first_row
                FROM staged s
                LEFT JOIN inserted i ON i.code = s.code AND s.row_number = s.first_row
                WHERE i.code IS NULL
            )
            SELECT (SELECT count(*) FROM inserted), n.row_number, n.code,
                n.row_number = n.first_row AND EXISTS (
                    SELECT 1 FROM {_CODE_TABLE} existing
                    WHERE existing.code = n.code AND existing.pool_id = %(pool)s
                        AND existing.id <= %(watermark)s
                )
            FROM (SELECT 1) one LEFT JOIN not_added n ON true
            """,
            {
                "pool": pool_id,
                "available": Code.Status.AVAILABLE,
                "watermark": watermark,
                # The rows' dates are naive, in the project's time zone.
                "tz": timezone.get_default_timezone_name(),
            },
        )
        result = BatchResult()
        for added, row_number, code, in_pool_before in cursor.fetchall():
            result.added = added
            if row_number is None:
                continue
            if in_pool_before:
                result.already_in_pool += 1
            else:
                result.duplicates.append((row_number, code))
        return result


def _copy_text(rows: list[tuple]) -> str:
    """Return the rows in COPY's text format.

    Written by hand because the driver's per-row conversion costs more than the database's
    work; validation has left no tab or newline in a code, and no special character in a date,
    so only a code's backslashes need escaping.
    """
    lines = []
    for row_number, code, *dates in rows:
        if "\\" in code:
            code = code.replace("\\", "\\\\")
        lines.append(f"{row_number}\t{code}\t" + "\t".join(d or "\\N" for d in dates) + "\n")
    return "".join(lines)


# SQLite binds at most 999 parameters in older builds.
_LOOKUP_CHUNK = 500


def _load_batch_generic(pool_id: int, rows: list[tuple], watermark: int) -> BatchResult:
    codes = list({row[1] for row in rows})
    existing: dict[str, int] = {}
    for start in range(0, len(codes), _LOOKUP_CHUNK):
        chunk = codes[start : start + _LOOKUP_CHUNK]
        existing.update(
            Code.objects.filter(pool_id=pool_id, code__in=chunk).values_list("code", "id")
        )
    result = BatchResult()
    new_codes = []
    seen = set()
    tz = timezone.get_default_timezone()
    for row_number, code, issue_start, issue_end, available_from, available_till in rows:
        if code in seen:
            result.duplicates.append((row_number, code))
            continue
        seen.add(code)
        if code in existing:
            if existing[code] <= watermark:
                result.already_in_pool += 1
            else:
                result.duplicates.append((row_number, code))
            continue
        new_codes.append(
            Code(
                pool_id=pool_id,
                code=code,
                issue_start=to_datetime(issue_start, tz),
                issue_end=to_datetime(issue_end, tz),
                available_from=to_datetime(available_from, tz),
                available_till=to_datetime(available_till, tz),
            )
        )
    Code.objects.bulk_create(new_codes, batch_size=_LOOKUP_CHUNK)
    result.added = len(new_codes)
    return result
