"""Withdrawals: codes (leaked ones, say) taken out of use for good."""

import codecs
import re
from collections import Counter
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..counters import pool_counts_add
from ..jobs import (
    DATABASE_GONE,
    FAILED,
    Claim,
    ClaimLost,
    job_claim,
    job_enqueue_on_commit,
    job_finish,
    job_run_again,
    job_step,
)
from ..models import (
    Code,
    Pool,
    Withdrawal,
)
from ..signals import stock_changed_on_commit

# A list longer than this is withdrawn by a worker, with its report on the job's row; a shorter
# one at once, in the request.
WITHDRAW_AT_ONCE = 1_000
NOT_FOUND_SAMPLE = 100
NOTHING_TO_WITHDRAW = "Give at least one code to withdraw."
NOT_RERUNNABLE = "Only a failed withdrawal can be run again."
WITHDRAWAL_FAILED = (
    "The withdrawal stopped on an unexpected error; the codes withdrawn so far stay withdrawn. "
    "Run it again, or tell an administrator: {error}"
)
_LIST_SEPARATORS = re.compile(r"[\s,;]+")


def code_list_parse(text: str) -> list[str]:
    """Return the codes of a pasted or uploaded list, each once, in order.

    Codes are separated by line breaks, spaces, tabs, commas or semicolons (a code has none of
    these: imports refuse them); a first entry reading `code` (any case) is a header.
    """
    codes = [code for code in _LIST_SEPARATORS.split(text or "") if code]
    if codes and codes[0].lower() == "code":
        codes = codes[1:]
    return list(dict.fromkeys(codes))


# A file of codes is decoded and split a megabyte at a time.
_READ_CHUNK = 1024 * 1024


def code_list_read(file: BinaryIO) -> list[str]:
    """Return the codes of an uploaded list as code_list_parse reads the same text (UTF-8, a BOM
    dropped, bytes that are not UTF-8 replaced), reading the file a chunk at a time: the request
    holds the codes once, not the file's bytes, its text and its pieces besides."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    codes: dict[str, None] = {}
    tail = ""
    first = True
    while True:
        chunk = file.read(_READ_CHUNK)
        text = tail + decoder.decode(chunk, final=not chunk)
        pieces = _LIST_SEPARATORS.split(text)
        # The last piece may go on in the next chunk; at the end it is the last code.
        tail = pieces.pop() if chunk else ""
        for code in pieces:
            if not code:
                continue
            if first and code.lower() == "code":
                first = False
                continue
            first = False
            codes[code] = None
        if not chunk:
            return list(codes)


def codes_withdraw(
    *, pool: Pool, codes: list[str] | None = None, code_ids=None, user=None, reason: str = ""
) -> Withdrawal:
    """Withdraw codes of `pool`, named by text (`codes`) or by id (`code_ids`), for good:
    check and redeem then refuse them with `withdrawn`, and they leave the stock.

    A list of more than WITHDRAW_AT_ONCE codes is queued for a worker (see withdrawal_run);
    the returned Withdrawal is the job and its report. Codes already redeemed (single use) or
    withdrawn are left as they are and counted in the report.
    """
    if code_ids is not None:
        codes = list(
            Code.objects.filter(pool=pool, pk__in=list(code_ids)).values_list("code", flat=True)
        )
    codes = list(dict.fromkeys(c.strip() for c in codes or [] if c and c.strip()))
    if not codes:
        raise ValidationError(NOTHING_TO_WITHDRAW, code="nothing_to_withdraw")
    withdrawal = Withdrawal.objects.create(
        pool=pool,
        created_by=user,
        reason=(reason or "").strip(),
        requested="\n".join(codes),
        codes_requested=len(codes),
        enqueued_at=timezone.now(),
    )
    if len(codes) > WITHDRAW_AT_ONCE:
        job_enqueue_on_commit(withdrawal)
        return withdrawal
    return withdrawal_run(withdrawal_id=withdrawal.pk)


def withdrawal_run(*, withdrawal_id: int) -> Withdrawal | None:
    """Run (or resume) a withdrawal as a job (pools.jobs): claim it, withdraw its codes slice by
    slice, each slice committed with its counts and progress; a job finished, or held by a live
    worker, is left alone. Return the withdrawal as it is then."""
    withdrawal = job_claim(Withdrawal, withdrawal_id)
    if isinstance(withdrawal, Claim):
        return Withdrawal.objects.filter(pk=withdrawal_id).first()
    codes = withdrawal.requested.split("\n")
    try:
        while withdrawal.codes_done < len(codes):
            chunk = codes[withdrawal.codes_done : withdrawal.codes_done + settings.WITHDRAW_SLICE]
            _withdraw_slice(withdrawal, chunk)
    except ClaimLost:
        return Withdrawal.objects.filter(pk=withdrawal_id).first()
    except DATABASE_GONE:
        raise
    except Exception as error:
        # The committed slices stay; running it again goes on after them.
        job_finish(withdrawal, FAILED, message=WITHDRAWAL_FAILED.format(error=error))
        raise
    job_finish(withdrawal, Withdrawal.Status.COMPLETED)
    return withdrawal


def withdrawal_rerun(*, withdrawal: Withdrawal) -> Withdrawal:
    """Queue a failed withdrawal again; the slices it committed are not redone."""
    return job_run_again(withdrawal, refused=NOT_RERUNNABLE)


@transaction.atomic
def _withdraw_slice(withdrawal: Withdrawal, chunk: list[str]) -> None:
    found = dict(
        Code.objects.select_for_update()
        .filter(pool_id=withdrawal.pool_id, code__in=chunk)
        .values_list("code", "status")
    )
    statuses = Counter(found.values())
    withdrawable = [code for code, status in found.items() if status in Code.WITHDRAWABLE]
    if withdrawable:
        Code.objects.filter(pool_id=withdrawal.pool_id, code__in=withdrawable).update(
            status=Code.Status.WITHDRAWN, withdrawal=withdrawal
        )
        pool_counts_add(
            pool_id=withdrawal.pool_id,
            withdrawn=len(withdrawable),
            **{status: -statuses[status] for status in Code.WITHDRAWABLE},
        )
    missing = [code for code in chunk if code not in found]
    sample_room = NOT_FOUND_SAMPLE - len(withdrawal.not_found_sample.split())
    if missing and sample_room > 0:
        withdrawal.not_found_sample = "\n".join(
            filter(None, [withdrawal.not_found_sample, *missing[:sample_room]])
        )
    job_step(
        withdrawal,
        codes_done=withdrawal.codes_done + len(chunk),
        codes_withdrawn=F("codes_withdrawn") + len(withdrawable),
        from_stock=F("from_stock") + statuses[Code.Status.AVAILABLE],
        already_withdrawn=F("already_withdrawn") + statuses[Code.Status.WITHDRAWN],
        already_redeemed=F("already_redeemed") + statuses[Code.Status.REDEEMED],
        not_found=F("not_found") + len(missing),
        not_found_sample=withdrawal.not_found_sample,
    )
    if statuses[Code.Status.AVAILABLE]:
        stock_changed_on_commit(withdrawal.pool)
