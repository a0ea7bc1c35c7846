"""Withdrawals: codes (leaked ones, say) taken out of use for good."""

import codecs
import os
import re
from collections import Counter
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

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
    job_speaking,
    job_step,
)
from ..models import (
    Code,
    Pool,
    Withdrawal,
)
from ..signals import stock_changed_on_commit
from ..uploads import upload_too_large

# A list longer than this is withdrawn by a worker, with its report on the job's row; a shorter
# one at once, in the request. An uploaded list always goes to the worker, which reads it
# (withdrawal_file_start).
WITHDRAW_AT_ONCE = 1_000
NOT_FOUND_SAMPLE = 100
# Refusals told in the request, in its reader's language; the job's messages (a list refused by
# the worker, a failure) are stored in the language of whoever started it (jobs.job_speaking).
NOTHING_TO_WITHDRAW = _("Give at least one code to withdraw.")
NOT_RERUNNABLE = _("Only a failed withdrawal can be run again.")
LIST_NOT_TEXT = _(
    "“{name}” is not a text or CSV file: save the codes as text or CSV, one per line, and "
    "upload it again."
)
LIST_EMPTY = _(
    "“{name}” holds no codes, so nothing was withdrawn. Check the file and upload it again."
)
NEEDS_NEW_FILE = _(
    "This withdrawal failed because of its file, and running it again would fail the same way: "
    "withdraw a corrected file from the pool's page."
)
WITHDRAWAL_FAILED = _(
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


# The upload request looks at this much of a list for a NUL byte: a workbook (a zip), an old
# Excel file, a PDF or an image shows one within its first bytes. The worker checks the rest.
LIST_SNIFF_BYTES = 8 * 1024


class CodeListNotText(ValidationError):
    """An uploaded list holds NUL characters: a workbook or an image, not text. No code has one
    (nor a pasted list: Django's CharField refuses them), and PostgreSQL cannot store it."""

    def __init__(self, name: str):
        super().__init__(LIST_NOT_TEXT.format(name=name), code="not_text")


def code_list_sniff(file: BinaryIO, *, name: str) -> None:
    """Raise CodeListNotText if the first LIST_SNIFF_BYTES of an uploaded list are not text; leave
    the file at its start."""
    file.seek(0)
    head = file.read(LIST_SNIFF_BYTES)
    file.seek(0)
    if b"\0" in head:
        raise CodeListNotText(name)


def code_list_read(file: BinaryIO, *, name: str = "") -> list[str]:
    """Return the codes of an uploaded list as code_list_parse reads the same text (UTF-8, a BOM
    dropped, bytes that are not UTF-8 replaced), reading the file a chunk at a time: the worker
    holds the codes once, not the file's bytes, its text and its pieces besides. Raise
    CodeListNotText, naming the file as `name`, if it holds a NUL byte anywhere."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    codes: dict[str, None] = {}
    tail = ""
    first = True
    while True:
        chunk = file.read(_READ_CHUNK)
        if b"\0" in chunk:
            raise CodeListNotText(name or os.path.basename(getattr(file, "name", "") or ""))
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


def withdrawal_file_start(
    *, pool: Pool, file, name: str = "", codes: list[str] | None = None, user=None, reason: str = ""
) -> Withdrawal:
    """Store an uploaded list of codes to withdraw from `pool` and queue its withdrawal; return
    the Withdrawal (queued), which is the job and its report.

    The file is not read here: only its size is checked (WITHDRAW_MAX_LIST_SIZE) and its first
    bytes looked at (code_list_sniff), so that a workbook is refused while the manager waits.
    The worker reads it (withdrawal_run), with `codes` (a pasted list, say) before its own, each
    code once; a file that turns out not to be text, or to hold no codes with none pasted,
    fails the job with a message on its report. Raise ValidationError (CodeListNotText) for a
    file refused here.
    """
    name = name or os.path.basename(file.name)
    refusal = upload_too_large(name=name, size=file.size, limit=settings.WITHDRAW_MAX_LIST_SIZE)
    if refusal:
        raise ValidationError(refusal, code="too_large")
    code_list_sniff(file, name=name)
    codes = list(dict.fromkeys(c.strip() for c in codes or [] if c and c.strip()))
    with transaction.atomic():
        withdrawal = Withdrawal.objects.create(
            pool=pool,
            created_by=user,
            reason=(reason or "").strip(),
            requested="\n".join(codes),
            codes_requested=len(codes),
            list_file=file,
            list_file_name=name,
            enqueued_at=timezone.now(),
        )
        job_enqueue_on_commit(withdrawal)
    return withdrawal


def withdrawal_run(*, withdrawal_id: int) -> Withdrawal | None:
    """Run (or resume) a withdrawal as a job (pools.jobs): claim it, read its uploaded list if it
    has one and it was not read yet (_list_read), then withdraw its codes slice by
    slice, each slice committed with its counts and progress; a job finished, or held by a live
    worker, is left alone. Return the withdrawal as it is then."""
    withdrawal = job_claim(Withdrawal, withdrawal_id)
    if isinstance(withdrawal, Claim):
        return Withdrawal.objects.filter(pk=withdrawal_id).first()
    try:
        if withdrawal.list_file_name and not _list_read(withdrawal):
            return withdrawal
        codes = withdrawal.requested.split("\n")
        while withdrawal.codes_done < len(codes):
            chunk = codes[withdrawal.codes_done : withdrawal.codes_done + settings.WITHDRAW_SLICE]
            _withdraw_slice(withdrawal, chunk)
    except ClaimLost:
        return Withdrawal.objects.filter(pk=withdrawal_id).first()
    except DATABASE_GONE:
        raise
    except Exception as error:
        # The committed slices stay; running it again goes on after them.
        with job_speaking(withdrawal):
            message = WITHDRAWAL_FAILED.format(error=error)
        job_finish(withdrawal, FAILED, message=message)
        raise
    job_finish(withdrawal, Withdrawal.Status.COMPLETED)
    return withdrawal


def _list_read(withdrawal: Withdrawal) -> bool:
    """Read the withdrawal's uploaded list into `requested` (after the codes already there), once:
    the codes, their count and `list_read` are committed together, so an attempt killed before
    that commit leaves nothing and the next one reads the file again, and one killed after it
    finds the list read. Return False when the list itself failed the job (not text, no codes).

    The file is deleted once its codes are on the row: nothing reads it again (a resumed job
    reads `requested`), and a list of leaked codes is best kept in one place."""
    if not withdrawal.list_read:
        name = withdrawal.list_file_name
        try:
            with withdrawal.list_file.open("rb") as file, job_speaking(withdrawal):
                listed = code_list_read(file, name=name)
        except CodeListNotText as refusal:
            return _list_refused(withdrawal, refusal.message)
        codes = list(dict.fromkeys([*filter(None, withdrawal.requested.split("\n")), *listed]))
        if not codes:
            with job_speaking(withdrawal):
                message = LIST_EMPTY.format(name=name)
            return _list_refused(withdrawal, message)
        with transaction.atomic():
            job_step(
                withdrawal, requested="\n".join(codes), codes_requested=len(codes), list_read=True
            )
    _list_file_delete(withdrawal)
    return True


def _list_refused(withdrawal: Withdrawal, message: str) -> bool:
    # An attempt that lost its claim leaves the file to the one that holds the job now.
    if job_finish(withdrawal, FAILED, message=message, needs_new_file=True):
        _list_file_delete(withdrawal)
    return False


def _list_file_delete(withdrawal: Withdrawal) -> None:
    # The file first, then the field: an attempt killed in between finds the field still set
    # and deletes again (deleting a missing file is no error), so no file is left unnamed.
    if withdrawal.list_file.name:
        withdrawal.list_file.storage.delete(withdrawal.list_file.name)
        Withdrawal.objects.filter(pk=withdrawal.pk).update(list_file="")
        withdrawal.list_file.name = ""


@transaction.atomic
def withdrawal_rerun(*, withdrawal: Withdrawal) -> Withdrawal:
    """Queue a failed withdrawal again; the slices it committed are not redone. Refused for a
    failure of its uploaded list (Withdrawal.can_run_again): the same file fails the same way."""
    locked = Withdrawal.objects.select_for_update().get(pk=withdrawal.pk)
    if locked.status == Withdrawal.Status.FAILED and not locked.can_run_again:
        raise ValidationError(NEEDS_NEW_FILE, code="needs_new_file")
    return job_run_again(locked, refused=NOT_RERUNNABLE)


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
