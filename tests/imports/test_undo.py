"""Undoing an import: each code records its addition; the report removes the unused ones."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from imports.engine import import_run
from imports.models import Import
from imports.services import (
    UNDO_NOT_FINISHED,
    UNDO_NOT_RECORDED,
    import_generate_start,
    import_text_start,
    import_undo,
    import_undo_preview,
)
from pools.code_services import (
    addition_undo_run,
    additions,
    code_addition_create,
    code_addition_record,
    code_issue,
    code_mark_issued,
    code_redeem,
    code_release,
    codes_withdraw,
)
from pools.models import AdditionUndo, Code
from pools.selectors import pool_stock, pools_with_counts
from tests.factories import counts_by_status, make_codes, make_pool
from tests.pools.locks import row_held_elsewhere

pytestmark = pytest.mark.django_db


def imported(pool, text) -> Import:
    job = import_text_start(pool=pool, text=text)
    import_run(import_id=job.pk)
    job.refresh_from_db()
    return job


def test_every_code_records_the_import_that_added_it():
    pool = make_pool(launched=True)
    make_codes(pool, ["BEFORE"])
    first = imported(pool, "A1\nA2\nBEFORE")
    second = imported(pool, "B1\nA1")
    generated = import_generate_start(
        pool=make_pool(), count=5, length=8, alphabet="ABCDEFGHJK", prefix="G-"
    )
    import_run(import_id=generated.pk)
    generated.refresh_from_db()

    by_code = dict(Code.objects.filter(pool=pool).values_list("code", "addition_id"))
    assert by_code == {
        "BEFORE": None,
        "A1": first.addition_id,
        "A2": first.addition_id,
        "B1": second.addition_id,
    }
    assert Code.objects.filter(addition_id=generated.addition_id).count() == 5


def test_undo_removes_the_unused_codes_of_the_import_only():
    pool = make_pool(launched=True)
    make_codes(pool, ["OLD"])
    job = imported(pool, "\n".join(f"U{i}" for i in range(6)))
    other = imported(pool, "KEEP1\nKEEP2")
    issued = code_issue(pool=pool, customer="c1")  # OLD, the lowest id
    issued = code_issue(pool=pool, customer="c1")  # U0
    code_redeem(code=code_issue(pool=pool, customer="c2").code, customer="c2")  # U1
    codes_withdraw(pool=pool, codes=["U5"])

    preview = import_undo_preview(job=job)
    assert (preview.removed, preview.kept) == (3, 3)
    outcome = addition_undo_run(undo_id=import_undo(job=job).pk)

    assert issued.code == "U0"
    assert outcome.status == "completed"
    assert (outcome.removed, outcome.kept_issued, outcome.kept_redeemed) == (3, 1, 1)
    assert outcome.kept_withdrawn == 1
    left = set(Code.objects.filter(pool=pool).values_list("code", flat=True))
    assert left == {"OLD", "U0", "U1", "U5", "KEEP1", "KEEP2"}
    counted = pools_with_counts().get(pk=pool.pk)
    assert (counted.codes_available, counted.codes_total) == (2, 6)
    assert pool_stock(pool=pool) == 2
    assert other.addition.codes.count() == 2


def test_undo_keeps_every_multiple_use_code_with_a_history(settings):
    """A multiple-use code stays available after use: issued, marked as issued, or redeemed
    with no issue before (nothing requires one), it has a history, and undo keeps it."""
    settings.UNDO_SLICE = 2
    pool = make_pool(launched=True, allow_multiple_use=True)
    job = imported(pool, "MU1\nMU2\nMU3\nMU4\nMU5")
    code_redeem(code="MU2", customer="c1")
    code_mark_issued(code="MU4", customer="c2")
    assert code_issue(pool=pool, customer="c3").code == "MU1"

    preview = import_undo_preview(job=job)
    outcome = addition_undo_run(undo_id=import_undo(job=job).pk)

    assert (preview.removed, preview.kept_used) == (outcome.removed, outcome.kept_used) == (2, 3)
    left = set(Code.objects.filter(pool=pool).values_list("code", flat=True))
    assert left == {"MU1", "MU2", "MU4"}
    assert pool_stock(pool=pool) == pools_with_counts().get(pk=pool.pk).codes_available == 3


def test_asking_again_while_an_undo_is_queued_or_running_returns_that_undo():
    pool = make_pool(launched=True)
    job = imported(pool, "Q1\nQ2")

    first = import_undo(job=job)  # queued: no worker has taken it yet
    assert import_undo(job=job) == first
    AdditionUndo.objects.filter(pk=first.pk).update(status=AdditionUndo.Status.RUNNING)
    assert import_undo(job=job) == first
    AdditionUndo.objects.filter(pk=first.pk).update(status=AdditionUndo.Status.COMPLETED)
    assert import_undo(job=job) != first
    assert AdditionUndo.objects.filter(addition=job.addition).count() == 2


def test_undo_keeps_a_code_issued_then_given_back_to_stock_with_its_history():
    """A single-use code issued and given back (its message was never delivered) is in stock
    again, but has a history: the undo keeps it, as it keeps a multiple-use code handed out,
    rather than fail on it."""
    pool = make_pool(launched=True)
    job = imported(pool, "B1\nB2\nB3")
    given = code_issue(pool=pool, customer="c1", idempotency_key="k1")
    code_release(pool=pool, code=given.code, idempotency_key="k1")

    preview = import_undo_preview(job=job)
    outcome = addition_undo_run(undo_id=import_undo(job=job).pk)

    assert (outcome.status, outcome.message) == ("completed", "")
    assert (outcome.removed, outcome.kept_used, outcome.kept) == (2, 1, 1)
    assert (preview.removed, preview.kept_used) == (2, 1)
    assert list(Code.objects.filter(pool=pool).values_list("code", "status")) == [
        (given.code, "available")
    ]
    assert counts_by_status(pool)["available"] == counts_by_status(pool)["total"] == 1


def test_an_undo_runs_once_its_start_commits_and_a_second_start_meanwhile_returns_it(
    django_capture_on_commit_callbacks,
):
    pool = make_pool(launched=True)
    job = imported(pool, "S1\nS2")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        undo = import_undo(job=job)
        # Queued, then running in a worker: starting it again gives this one, not a second.
        assert import_undo(job=job) == undo
        AdditionUndo.objects.filter(pk=undo.pk).update(status="running", attempts=1)
        assert import_undo(job=job) == undo
        AdditionUndo.objects.filter(pk=undo.pk).update(status="queued", attempts=0)
    assert AdditionUndo.objects.get() == undo
    assert Code.objects.filter(pool=pool).count() == 2  # nothing before the commit

    for callback in callbacks:  # the commit: handed to a worker (run eagerly here)
        callback()
    undo.refresh_from_db()
    assert (undo.status, undo.removed) == ("completed", 2)
    assert not Code.objects.filter(pool=pool).exists()


def test_undo_is_refused_while_running_and_for_codes_that_did_not_record_it():
    pool = make_pool()
    job = import_text_start(pool=pool, text="R1")
    with pytest.raises(ValidationError) as running:
        import_undo(job=job)
    assert running.value.messages == [UNDO_NOT_FINISHED]

    import_run(import_id=job.pk)
    Code.objects.update(addition=None)  # as codes loaded before additions were recorded
    job.refresh_from_db()
    with pytest.raises(ValidationError) as unrecorded:
        import_undo(job=job)
    assert unrecorded.value.messages == [UNDO_NOT_RECORDED]


def test_report_offers_undo_counts_first_then_removes(manager_client, manager):
    pool = make_pool(launched=True)
    job = imported(pool, "X1\nX2\nX3")
    code_issue(pool=pool, customer="c1")
    report = reverse("admin:imports_import_change", args=[job.pk])
    undo = reverse("admin:imports_import_undo", args=[job.pk])

    assert undo in manager_client.get(report).content.decode()
    confirm = manager_client.get(undo).content.decode()
    assert "2 codes will be removed" in confirm and "Remove 2 codes" in confirm
    assert Code.objects.count() == 3

    response = manager_client.post(undo, {"confirm": "1"}, follow=True)

    started = AdditionUndo.objects.get()
    assert response.redirect_chain[-1][0] == reverse(
        "admin:pools_additionundo_change", args=[started.pk]
    )
    assert (
        f"Removing the codes import #{job.pk} added that were never used, as "
        f"undo #{started.pk}: this report shows its progress."
    ) in response.content.decode()
    assert "Queued" in response.content.decode()
    addition_undo_run(undo_id=started.pk)  # what the worker does
    assert list(Code.objects.values_list("code", flat=True)) == ["X1"]
    done = manager_client.get(reverse("admin:pools_additionundo_change", args=[started.pk]))
    assert "1 issued, 0 redeemed, 0 withdrawn" in done.content.decode()
    report_page = manager_client.get(report).content.decode()
    assert "Removed 2 of the 3 codes on " in report_page
    assert "1 kept, with their history." in report_page
    assert f"import #{job.pk}</a>" in pool_page_text(pool, manager_client)
    assert undo not in report_page  # nothing left to remove
    pool_page = manager_client.get(reverse("admin:pools_pool_change", args=[pool.pk]))
    assert "Removed 2 of the 3 codes of an addition" in pool_page.content.decode()
    code_page = manager_client.get(reverse("admin:pools_code_change", args=[Code.objects.get().pk]))
    assert f"import #{job.pk}" in code_page.content.decode()


def pool_page_text(pool, client) -> str:
    return client.get(reverse("admin:pools_pool_change", args=[pool.pk])).content.decode()


def test_viewer_is_not_offered_undo_and_a_forged_one_is_refused(viewer_client):
    pool = make_pool()
    job = imported(pool, "Y1")
    report = viewer_client.get(reverse("admin:imports_import_change", args=[job.pk]))
    response = viewer_client.post(
        reverse("admin:imports_import_undo", args=[job.pk]), {"confirm": "1"}
    )
    assert "Remove the codes this import added" not in report.content.decode()
    assert response.status_code == 403
    assert Code.objects.count() == 1


def test_an_undo_taken_over_mid_slice_leaves_that_slice_whole_and_the_next_attempt_ends_it(
    settings, monkeypatch
):
    """This worker was thought dead while it removed a slice, and another attempt took the job
    over: that slice is rolled back whole (its codes with its counts), and the attempt that
    goes on removes every code exactly once, the pool's counts following."""
    settings.UNDO_SLICE = 2
    pool = make_pool(launched=True)
    job = imported(pool, "\n".join(f"T{i}" for i in range(5)))
    undo = import_undo(job=job)
    real_slice = additions._undo_slice
    slices = []

    def slice_then_taken_over(addition, after, *rest):
        outcome = real_slice(addition, after, *rest)
        slices.append(after)
        if len(slices) == 2:
            AdditionUndo.objects.filter(pk=undo.pk).update(attempts=F("attempts") + 1)
        return outcome

    monkeypatch.setattr(additions, "_undo_slice", slice_then_taken_over)
    addition_undo_run(undo_id=undo.pk)
    monkeypatch.setattr(additions, "_undo_slice", real_slice)

    left = Code.objects.filter(pool=pool).count()
    assert left == 3  # the first slice's two codes went, the second's are back
    assert counts_by_status(pool)["available"] == counts_by_status(pool)["total"] == left

    stale = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)
    AdditionUndo.objects.filter(pk=undo.pk).update(heartbeat_at=stale)
    done = addition_undo_run(undo_id=undo.pk)

    assert (done.status, done.removed, done.kept) == ("completed", 5, 0)
    assert not Code.objects.filter(pool=pool).exists()
    assert counts_by_status(pool)["available"] == counts_by_status(pool)["total"] == 0
    job.addition.refresh_from_db()
    assert job.addition.codes_removed == 5


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_an_undo_keeps_a_code_being_issued_meanwhile_and_removes_it_next_time():
    """A second connection holds a row lock on one of the import's codes, as an issue in
    progress does: the undo neither waits for it (the lock timeout set here would make that an
    error) nor removes it under the issue; it is kept, and a later undo removes it if it is
    still available."""
    pool = make_pool(launched=True)
    job = imported(pool, "H1\nH2\nH3")
    with row_held_elsewhere(f"SELECT id FROM {Code._meta.db_table} WHERE code = 'H2' FOR UPDATE"):
        first = addition_undo_run(undo_id=import_undo(job=job).pk)

    assert (first.status, first.removed) == ("completed", 2)
    assert list(Code.objects.filter(pool=pool).values_list("code", flat=True)) == ["H2"]
    assert counts_by_status(pool)["available"] == 1
    again = addition_undo_run(undo_id=import_undo(job=job).pk)
    assert (again.status, again.removed) == ("completed", 1)
    assert not Code.objects.filter(pool=pool).exists()


def test_an_undo_that_fails_says_why_keeps_what_it_removed_and_can_be_started_again(
    settings, monkeypatch
):
    settings.UNDO_SLICE = 2
    pool = make_pool(launched=True)
    job = imported(pool, "\n".join(f"F{i}" for i in range(5)))
    real_slice = additions._undo_slice
    slices = []

    def second_slice_breaks(addition, after, *rest):
        slices.append(after)
        if len(slices) == 2:
            raise RuntimeError("the disk is full")
        return real_slice(addition, after, *rest)

    monkeypatch.setattr(additions, "_undo_slice", second_slice_breaks)
    with pytest.raises(RuntimeError):
        addition_undo_run(undo_id=import_undo(job=job).pk)
    monkeypatch.setattr(additions, "_undo_slice", real_slice)

    failed = AdditionUndo.objects.get()
    assert (failed.status, failed.removed) == ("failed", 2)
    assert failed.message == (
        "The undo stopped on an unexpected error; the codes removed so far stay removed. "
        "Start it again from the import's report, or tell an administrator: the disk is full"
    )
    assert counts_by_status(pool)["available"] == Code.objects.filter(pool=pool).count() == 3

    again = addition_undo_run(undo_id=import_undo(job=job).pk)
    assert (again.status, again.removed) == ("completed", 3)
    assert not Code.objects.filter(pool=pool).exists()


class Killed(BaseException):
    """The worker's process ends here (SIGKILL): no handler of the job's runs."""


# None: never killed; k: killed right after its k-th slice committed (0: before the first; 3:
# after the last, before the job is finished).
@pytest.mark.parametrize("killed_after", [None, 0, 1, 2, 3])
def test_an_undo_killed_at_any_slice_ends_as_if_it_had_never_been(
    settings, monkeypatch, killed_after
):
    """Whichever slice its worker dies after, the attempt that takes the job over ends it with
    the same codes, counts and report as a run never interrupted, and leaves the codes of
    another import, interleaved with its own by id, alone."""
    settings.UNDO_SLICE = 2
    pool = make_pool(launched=True)
    ours, other = code_addition_create(pool=pool), code_addition_create(pool=pool)
    for i in range(6):  # two imports side by side: their codes' ids interleave
        Code.objects.create(pool=pool, code=f"U{i}", addition=ours)
        Code.objects.create(pool=pool, code=f"V{i}", addition=other)
    code_addition_record(addition_id=ours.pk, pool_id=pool.pk, count=6)
    code_addition_record(addition_id=other.pk, pool_id=pool.pk, count=6)
    assert [code_issue(pool=pool, customer=c).code for c in ("c1", "c2", "c3")] == [
        "U0",
        "V0",
        "U1",
    ]
    code_redeem(code="U1", customer="c3")
    codes_withdraw(pool=pool, codes=["U3"])
    undo = additions.addition_undo_start(addition=ours)
    real_slice = additions._undo_slice
    slices = []

    def killed(addition, after, *rest):
        if len(slices) == killed_after:
            raise Killed
        slices.append(after)
        return real_slice(addition, after, *rest)

    if killed_after is not None:
        monkeypatch.setattr(additions, "_undo_slice", killed)
        with pytest.raises(Killed):
            addition_undo_run(undo_id=undo.pk)
        monkeypatch.setattr(additions, "_undo_slice", real_slice)
        stale = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)
        AdditionUndo.objects.filter(pk=undo.pk).update(heartbeat_at=stale)
    done = addition_undo_run(undo_id=undo.pk)

    assert (done.status, done.attempts) == ("completed", 1 if killed_after is None else 2)
    assert (done.removed, done.progress_done, done.progress_total) == (3, 6, 6)
    assert (done.kept_issued, done.kept_redeemed, done.kept_withdrawn) == (1, 1, 1)
    left = dict(Code.objects.filter(pool=pool).values_list("code", "status"))
    assert left == {
        "U0": "issued",
        "U1": "redeemed",
        "U3": "withdrawn",
        **{f"V{i}": "available" for i in range(1, 6)},
        "V0": "issued",
    }
    assert counts_by_status(pool) == {
        "available": 5,
        "issued": 2,
        "redeemed": 1,
        "expired": 0,
        "withdrawn": 1,
        "total": 9,
    }
    ours.refresh_from_db()
    assert ours.codes_removed == 3
