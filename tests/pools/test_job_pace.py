"""A withdrawal and an undo move their report's count as they go: however slowly the database
works, their slices commit (with the job's progress) about once a second, not once per
WITHDRAW_SLICE or UNDO_SLICE codes."""

import time

import pytest

from imports.engine import import_run
from imports.models import Import
from imports.services import import_text_start
from pools.code_services import addition_undo_start, additions, codes_withdraw, withdrawals
from pools.models import AdditionUndo, Withdrawal
from tests.factories import make_codes, make_pool

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("on_commit_at_once", "fails_if_stuck")]

CODES = 1_200
SECONDS_PER_CODE = 0.003  # 333 codes a second: 3.6 s for the job


def commit_gaps(started: float, commits: list[float]) -> list[float]:
    times = [started, *commits]
    return [round(b - a, 2) for a, b in zip(times, times[1:], strict=False)]


def test_a_slow_withdrawal_commits_its_progress_every_second_or_so(monkeypatch):
    pool = make_pool(launched=True)
    codes = [f"W{n:05}" for n in range(CODES)]
    make_codes(pool, codes)
    real_slice, commits = withdrawals._withdraw_slice, []

    def slow_slice(withdrawal, chunk):
        time.sleep(SECONDS_PER_CODE * len(chunk))
        real_slice(withdrawal, chunk)
        commits.append(time.monotonic())

    monkeypatch.setattr(withdrawals, "_withdraw_slice", slow_slice)
    started = time.monotonic()

    withdrawal = codes_withdraw(pool=pool, codes=codes)

    withdrawal = Withdrawal.objects.get(pk=withdrawal.pk)
    assert (withdrawal.status, withdrawal.codes_withdrawn) == (Withdrawal.Status.COMPLETED, CODES)
    # Slices sized to about a second of this slow work: the bar moves several times (one slice
    # of WITHDRAW_SLICE/UNDO_SLICE would have held it still, then jumped to the end). The gaps
    # themselves are the benchmarks' business, not a test's.
    assert len(commits) >= 3, commit_gaps(started, commits)


def test_a_slow_undo_commits_its_progress_every_second_or_so(monkeypatch):
    pool = make_pool(launched=True)
    job = import_text_start(pool=pool, text="\n".join(f"U{n:05}" for n in range(CODES)))
    import_run(import_id=job.pk)
    addition = Import.objects.get(pk=job.pk).addition
    real_slice, commits = additions._undo_slice, []

    def slow_slice(addition, after, *rest):
        last, scanned, gone = real_slice(addition, after, *rest)
        time.sleep(SECONDS_PER_CODE * scanned)
        commits.append(time.monotonic())
        return last, scanned, gone

    monkeypatch.setattr(additions, "_undo_slice", slow_slice)
    started = time.monotonic()

    undo = addition_undo_start(addition=addition)

    undo = AdditionUndo.objects.get(pk=undo.pk)
    assert (undo.status, undo.removed) == (AdditionUndo.Status.COMPLETED, CODES)
    # Slices sized to about a second of this slow work: the bar moves several times (one slice
    # of WITHDRAW_SLICE/UNDO_SLICE would have held it still, then jumped to the end). The gaps
    # themselves are the benchmarks' business, not a test's.
    assert len(commits) >= 3, commit_gaps(started, commits)
