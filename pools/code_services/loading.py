"""Write batches of clean rows into a pool's codes with set-based SQL: no query per row. The
bulk half of an addition of codes (additions.py records it); imports hand their rows here and
write no pools table themselves.

Every batch is added with ON CONFLICT DO NOTHING semantics, so loading the same rows twice
cannot create a duplicate; a row whose code is already there is reported, not lost silently.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ..models import Code

_CODE_TABLE = Code._meta.db_table
_STAGING_COLUMNS = "row_number, code, issue_start, issue_end, available_from, available_till"


def to_datetime(text: str | None, tz) -> datetime | None:
    """Return the aware datetime of a date as the rows give it (naive ISO 8601 text in `tz`)."""
    if not text:
        return text
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


@dataclass
class BatchResult:
    added: int = 0
    # (row_number, code) of rows whose code appears earlier in the same import.
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    already_in_pool: int = 0
    # Added codes whose Issue-end or Available-till had already passed.
    expired_on_arrival: int = 0


def load_batch(
    *, pool_id: int, rows: list[tuple], watermark: int, addition_id: int | None = None
) -> BatchResult:
    """Add `rows` (row_number, code, issue_start, issue_end, available_from, available_till) to
    a pool, inside the caller's transaction. Dates are naive ISO 8601 text in the project's
    time zone, as clean_row gives them.

    A code that collides with a code of id <= `watermark` was in the pool before the import
    (on each of its rows); one that collides with a later code, or with an earlier row of the
    batch, is a duplicate.
    The caller makes sure no other import writes to the pool meanwhile. Each code added records
    `addition_id` (the pool's record of this addition), so that the addition can be undone.
    """
    result = BatchResult()
    first_rows = {}
    repeated = []
    for row in rows:
        if row[1] in first_rows:
            repeated.append((row[0], row[1]))
        else:
            first_rows[row[1]] = row
    unique = list(first_rows.values())
    if not unique:
        return result
    if connection.vendor != "postgresql":
        result.added, result.expired_on_arrival, collisions = _load_generic(
            pool_id, unique, addition_id
        )
    elif watermark == 0 and (direct := _copy_straight_in(pool_id, unique, addition_id)):
        # The pool was empty when the import started and no row of the batch collided.
        (result.added, result.expired_on_arrival), collisions = direct, []
    else:
        result.added, result.expired_on_arrival, collisions = _load_postgresql(
            pool_id, unique, addition_id
        )
    held = set()
    for row_number, code, code_id in collisions:
        if code_id <= watermark:
            result.already_in_pool += 1
            held.add(code)
        else:
            result.duplicates.append((row_number, code))
    # A code the pool held before the import is already in the pool on every row it is on,
    # as it is when its rows fall in different batches (which cannot know of each other).
    for row_number, code in repeated:
        if code in held:
            result.already_in_pool += 1
        else:
            result.duplicates.append((row_number, code))
    return result


def _load_postgresql(
    pool_id: int, rows: list[tuple], addition_id: int | None = None
) -> tuple[int, int, list[tuple]]:
    """Return how many rows were added, how many of them were past their Issue-end or
    Available-till already, and (row_number, code, id of the code it collided with) for each
    row that was not added."""
    params = {
        "pool": pool_id,
        "addition": addition_id,
        "available": Code.Status.AVAILABLE,
        "tz": timezone.get_default_timezone_name(),
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS import_staging (row_number bigint, code text, "
            "issue_start timestamp, issue_end timestamp, available_from timestamp, "
            "available_till timestamp) ON COMMIT DELETE ROWS"
        )
        # Emptied at commit, but a batch inside a caller's transaction only ends a savepoint.
        cursor.execute("TRUNCATE import_staging")
        # Codes of this pool with a higher id than this were added by the INSERT below.
        cursor.execute(f"SELECT max(id) FROM {_CODE_TABLE} WHERE pool_id = %(pool)s", params)
        params["floor"] = cursor.fetchone()[0] or 0
        # COPY is the fastest way into PostgreSQL; the staging table lets one INSERT … SELECT
        # then skip the codes that are there already.
        # The raw driver's COPY, with its errors wrapped as Django's like every other query's.
        with (
            connection.wrap_database_errors,
            cursor.cursor.copy(f"COPY import_staging ({_STAGING_COLUMNS}) FROM STDIN") as copy,
        ):
            copy.write(_copy_text(rows))
        # The rows' dates are naive, in the project's time zone.
        cursor.execute(
            f"""
            WITH inserted AS (
                INSERT INTO {_CODE_TABLE} (pool_id, addition_id, code, status, issue_start,
                    issue_end, available_from, available_till, issued_to, times_redeemed)
                SELECT %(pool)s, %(addition)s::bigint, code, %(available)s,
                    issue_start AT TIME ZONE %(tz)s, issue_end AT TIME ZONE %(tz)s,
                    available_from AT TIME ZONE %(tz)s, available_till AT TIME ZONE %(tz)s, '', 0
                FROM import_staging
                ON CONFLICT (code, pool_id) DO NOTHING
                RETURNING issue_end < now() OR available_till < now() AS expired
            )
            SELECT count(*), count(*) FILTER (WHERE expired) FROM inserted
            """,
            params,
        )
        added, expired = cursor.fetchone()
        if added == len(rows):
            return added, expired, []
        cursor.execute(
            f"""
            SELECT s.row_number, s.code, c.id
            FROM import_staging s
            JOIN {_CODE_TABLE} c ON c.code = s.code AND c.pool_id = %(pool)s
            WHERE c.id <= %(floor)s
            """,
            params,
        )
        return added, expired, cursor.fetchall()


def _copy_straight_in(
    pool_id: int, rows: list[tuple], addition_id: int | None
) -> tuple[int, int] | None:
    """COPY the rows straight into the codes table, in a savepoint; return how many were added
    and how many of them had expired already, or None (and nothing added) if one collided.

    For a pool that was empty when the import started, the common case: only a code repeated
    in the file can collide, with a row of this batch (load_batch drops those) or of an earlier
    batch, which the unique index refuses; the batch then takes the staging table, which
    reports each such row exactly. This skips the staging table and its INSERT … SELECT, which
    wrote every row twice (docs/benchmarks.md: import_csv_1000k_empty/copy).
    """
    tz_name = timezone.get_default_timezone_name()
    addition = "\\N" if addition_id is None else str(addition_id)
    prefix = f"{pool_id}\t{addition}\t{Code.Status.AVAILABLE}\t\t0\t"
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # The rows' dates are naive, in the project's time zone; COPY reads them in the
            # session's, set for this transaction only and set back after.
            cursor.execute(
                "SELECT current_setting('TimeZone'), set_config('TimeZone', %s, true)", [tz_name]
            )
            session_tz = cursor.fetchone()[0]
            with (
                connection.wrap_database_errors,
                cursor.cursor.copy(
                    f"COPY {_CODE_TABLE} (pool_id, addition_id, status, issued_to, "
                    "times_redeemed, code, issue_start, issue_end, available_from, "
                    "available_till) FROM STDIN"
                ) as copy,
            ):
                copy.write(_copy_text(rows, prefix=prefix))
            cursor.execute("SELECT set_config('TimeZone', %s, true)", [session_tz])
    except IntegrityError:
        return None
    now = timezone.localtime(timezone.now(), timezone.get_default_timezone()).replace(tzinfo=None)
    expired = sum(
        1
        for row in rows
        if (row[3] and datetime.fromisoformat(row[3]) < now)
        or (row[5] and datetime.fromisoformat(row[5]) < now)
    )
    return len(rows), expired


def _copy_text(rows: list[tuple], prefix: str | None = None) -> str:
    """Return the rows in COPY's text format.

    Written by hand because the driver's per-row conversion costs more than the database's
    work; validation has left no tab or newline in a code, and no special character in a date,
    so only a code's backslashes need escaping. Each line starts with the row's number, or with
    `prefix` instead.
    """
    lines = []
    for row in rows:
        code = row[1]
        if "\\" in code:
            code = code.replace("\\", "\\\\")
        start = f"{row[0]}\t" if prefix is None else prefix
        # Most files have no dates: their tail is the same for every row.
        dates = _NO_DATES if row[2:] == _NONE_DATES else "\t".join(d or "\\N" for d in row[2:])
        lines.append(f"{start}{code}\t{dates}\n")
    return "".join(lines)


_NONE_DATES = (None, None, None, None)
_NO_DATES = "\t".join(["\\N"] * 4)


# SQLite binds at most 999 parameters in older builds.
_LOOKUP_CHUNK = 500


def _load_generic(
    pool_id: int, rows: list[tuple], addition_id: int | None = None
) -> tuple[int, int, list[tuple]]:
    existing: dict[str, int] = {}
    codes = [row[1] for row in rows]
    for start in range(0, len(codes), _LOOKUP_CHUNK):
        chunk = codes[start : start + _LOOKUP_CHUNK]
        existing.update(
            Code.objects.filter(pool_id=pool_id, code__in=chunk).values_list("code", "id")
        )
    tz = timezone.get_default_timezone()
    collisions = [(row[0], row[1], existing[row[1]]) for row in rows if row[1] in existing]
    new_codes = [
        Code(
            pool_id=pool_id,
            addition_id=addition_id,
            code=code,
            issue_start=to_datetime(issue_start, tz),
            issue_end=to_datetime(issue_end, tz),
            available_from=to_datetime(available_from, tz),
            available_till=to_datetime(available_till, tz),
        )
        for _, code, issue_start, issue_end, available_from, available_till in rows
        if code not in existing
    ]
    Code.objects.bulk_create(new_codes, batch_size=_LOOKUP_CHUNK)
    now = timezone.now()
    expired = sum(
        1
        for code in new_codes
        if (code.issue_end and code.issue_end < now)
        or (code.available_till and code.available_till < now)
    )
    return len(new_codes), expired, collisions
