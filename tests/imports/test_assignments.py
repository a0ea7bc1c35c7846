"""Assignments: a customer list in, one code per customer, the list with codes out."""

import csv
import io
from datetime import timedelta

import psycopg
import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imports import assignments
from imports.assignment_results import result_write
from imports.assignments import (
    assignment_release,
    assignment_rerun,
    assignment_run,
    assignment_start,
)
from imports.customer_lists import open_customer_list
from imports.models import Assignment
from imports.readers import ImportFileError
from pools.code_services import code_issue, code_redeem, code_release
from pools.jobs import jobs_recover
from pools.models import Code, CodeIssue, Pool
from pools.services import pool_pause, pool_resume
from tests.factories import make_codes, make_pool, on_next_stock_change, result_rows, watching_pool
from tests.imports.files import csv_upload, xlsx_upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("on_commit_at_once", "fails_if_stuck")]


# 1: every row its own slice (a customer listed twice comes back in a later slice).
@pytest.mark.parametrize("batch_size", [5000, 1])
def test_assignment_gives_each_customer_one_code_and_hands_the_list_back(settings, batch_size):
    settings.ASSIGN_BATCH_SIZE = batch_size
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{i}" for i in range(10)])
    code_issue(pool=pool, customer="ann")  # holds a code already
    upload = csv_upload(
        "Email;Customer id;Name\na@x;ann;Ann\nb@x;bob;Bob\nc@x;;Nobody\nb2@x;bob;Bob again\n",
        name="march.csv",
    )

    job = assignment_start(pool=pool, file=upload)
    job.refresh_from_db()

    assert job.status == Assignment.Status.COMPLETED, job.message
    assert (job.customers_read, job.codes_issued, job.already_held) == (3, 1, 2)
    # Nothing from a fallback nor replaced, also in a slice with no customer (the blank id's).
    assert (job.from_fallback, job.codes_replaced) == (0, 0)
    assert job.rows_rejected == 1 and job.rejected_sample[0][0] == 4
    rows = result_rows(job)
    assert rows[0] == ["Email", "Customer id", "Name", "Code"]
    codes = {row[1]: row[3] for row in rows[1:]}
    assert codes["ann"] == Code.objects.get(issued_to="ann").code
    assert rows[2][3] == rows[4][3] == Code.objects.get(issued_to="bob").code
    assert codes[""] == ""

    again = assignment_start(pool=pool, file=csv_upload("Customer\nann\nbob\n"))
    again.refresh_from_db()
    assert (again.codes_issued, again.already_held) == (0, 2)
    assert Code.objects.filter(pool=pool, status="issued").count() == 2


class Killed(BaseException):
    """The worker's process ends here (SIGKILL): no handler of the job's runs."""


# The list's slices of two rows: [ann, bob], [(no id), cat], [ann, dan], [eve, fay], [gil].
KILLED_LIST = (
    "Customer;Name\nann;A\nbob;B\n;Nobody\ncat;C\nann;A again\ndan;D\neve;E\nfay;F\ngil;G\n"
)


# None: never killed; k: killed right after its k-th slice committed (0: before the first; 5:
# after the last, before the list with codes is stored).
@pytest.mark.parametrize("killed_after", [None, 0, 1, 2, 3, 4, 5])
def test_an_assignment_killed_at_any_slice_ends_as_if_it_had_never_been(settings, killed_after):
    """Whichever slice its worker dies after, the attempt that takes the job over ends it with
    the same codes, counts and list with codes as a run never interrupted: no row skipped, none
    done twice."""
    settings.ASSIGN_BATCH_SIZE = 2
    pool = make_pool(launched=True)
    make_codes(pool, [f"K{i}" for i in range(5)])
    code_issue(pool=pool, customer="cat")  # K0, held before: four codes for five customers
    job = Assignment.objects.create(
        pool=pool,
        file=csv_upload(KILLED_LIST, name="list.csv"),
        file_name="list.csv",
        progress_total=len(KILLED_LIST),
    )
    real_slice = assignments._slice_transaction
    committed = []

    def slice_then_killed(*args, **kwargs):
        if killed_after == 0:
            raise Killed
        codes = real_slice(*args, **kwargs)
        committed.append(codes)
        if len(committed) == killed_after:
            raise Killed
        return codes

    if killed_after is not None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(assignments, "_slice_transaction", slice_then_killed)
            with pytest.raises(Killed):
                assignment_run(assignment_id=job.pk)
        stale = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)
        Assignment.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    job = assignment_run(assignment_id=job.pk)

    assert job.status == Assignment.Status.COMPLETED_WITH_SHORTFALL, job.message
    assert job.attempts == (1 if killed_after is None else 2)
    assert (job.rows_done, job.customers_read, job.rows_rejected) == (9, 8, 1)
    assert (job.codes_issued, job.already_held, job.shortfall) == (4, 2, 2)
    assert job.short_sample == ["fay", "gil"]
    assert [row[0] for row in job.rejected_sample] == [4]
    assert result_rows(job) == [
        ["Customer", "Name", "Code"],
        ["ann", "A", "K1"],
        ["bob", "B", "K2"],
        ["", "Nobody", ""],
        ["cat", "C", "K0"],
        ["ann", "A again", "K1"],
        ["dan", "D", "K3"],
        ["eve", "E", "K4"],
        ["fay", "F", ""],
        ["gil", "G", ""],
    ]
    live = CodeIssue.objects.filter(pool=pool, released_at__isnull=True)
    assert sorted(live.values_list("customer", "code__code")) == [
        ("ann", "K1"),
        ("bob", "K2"),
        ("cat", "K0"),
        ("dan", "K3"),
        ("eve", "K4"),
    ]


def test_assignment_reports_the_shortfall_and_takes_from_the_fallback():
    pool = make_pool(launched=True)
    spare = make_pool(pool.campaign, launched=True)
    Pool.objects.filter(pk=pool.pk).update(fallback_pool=spare)
    make_codes(pool, ["M1"])
    make_codes(spare, ["S1", "S2"])

    job = assignment_start(pool=pool, file=csv_upload("id\n1\n2\n3\n4\n"))
    job.refresh_from_db()

    assert job.status == Assignment.Status.COMPLETED_WITH_SHORTFALL
    assert (job.codes_issued, job.from_fallback, job.shortfall) == (3, 2, 1)
    assert job.short_sample == ["4"]
    assert [row[1] for row in result_rows(job)[1:]] == ["M1", "S1", "S2", ""]


def test_a_pool_paused_mid_job_stops_it_and_a_run_after_resume_finishes_the_list(settings):
    settings.ASSIGN_BATCH_SIZE = 2
    pool = watching_pool()
    make_codes(pool, [f"P{i}" for i in range(6)])

    with on_next_stock_change(lambda pool: pool_pause(pool=Pool.objects.get(pk=pool.pk))):
        job = assignment_start(pool=pool, file=csv_upload("Customer\nc1\nc2\nc3\nc4\n"))
    job.refresh_from_db()

    assert job.status == Assignment.Status.FAILED
    assert job.message == (
        "The pool stopped issuing (The pool is paused: try again once it is resumed.); the "
        "customers so far have their codes. Run it again once the pool issues again."
    )
    assert (job.rows_done, job.codes_issued) == (2, 2)
    assert not job.result  # no list with codes from a job that stopped
    assert sorted(CodeIssue.objects.values_list("customer", "code__code")) == [
        ("c1", "P0"),
        ("c2", "P1"),
    ]

    pool_resume(pool=Pool.objects.get(pk=pool.pk))
    assignment_rerun(job=job)
    job = assignment_run(assignment_id=job.pk)

    assert job.status == Assignment.Status.COMPLETED, job.message
    assert job.message == ""
    assert (job.customers_read, job.codes_issued, job.already_held) == (4, 4, 0)
    assert result_rows(job) == [
        ["Customer", "Code"],
        ["c1", "P0"],
        ["c2", "P1"],
        ["c3", "P2"],
        ["c4", "P3"],
    ]


def test_a_job_running_in_a_live_worker_is_left_alone_and_a_dead_workers_is_taken_over(
    settings,
):
    pool = make_pool(launched=True)
    make_codes(pool, ["L1", "L2"])
    job = Assignment.objects.create(
        pool=pool,
        file=csv_upload("Customer\nc1\nc2\n", name="list.csv"),
        file_name="list.csv",
        progress_total=16,
        status=Assignment.Status.RUNNING,
        heartbeat_at=timezone.now(),
        message="Running in worker 1.",
    )

    assert assignment_run(assignment_id=job.pk).status == Assignment.Status.RUNNING
    assert jobs_recover(Assignment) == 0
    assert not CodeIssue.objects.exists()

    dead = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)
    Assignment.objects.filter(pk=job.pk).update(heartbeat_at=dead)
    assert jobs_recover(Assignment) == 1  # queued again, and run here at once
    job.refresh_from_db()
    assert (job.status, job.message, job.codes_issued) == (Assignment.Status.COMPLETED, "", 2)
    assert job.started_at <= job.finished_at  # the report's duration
    assert assignment_run(assignment_id=job.pk).codes_issued == 2  # done: not run again


def test_a_code_given_back_mid_job_is_issued_again_once_the_codes_after_it_run_out(settings):
    """Each slice claims after the codes the job claimed last; a code given back behind that
    point is found when nothing is left after it, before anyone is reported short."""
    settings.ASSIGN_BATCH_SIZE = 1
    pool = watching_pool()
    make_codes(pool, ["A", "B"])

    def give_back_the_first(pool):
        code_release(pool=pool, code="A", idempotency_key="assignment:c1")

    with on_next_stock_change(give_back_the_first):
        job = assignment_start(pool=pool, file=csv_upload("Customer\nc1\nc2\nc3\n"))
    job.refresh_from_db()

    assert job.status == Assignment.Status.COMPLETED, job.message
    assert (job.codes_issued, job.shortfall) == (3, 0)
    held = dict(
        CodeIssue.objects.filter(released_at__isnull=True).values_list("customer", "code__code")
    )
    # Which of the two gets the given-back code depends on where the claims start.
    assert sorted(held) == ["c2", "c3"] and sorted(held.values()) == ["A", "B"]


def test_assignment_from_a_workbook_keeps_numbers_as_ids():
    pool = make_pool(launched=True)
    make_codes(pool, ["X1", "X2"])
    job = assignment_start(pool=pool, file=xlsx_upload([["Customer", "Mail"], [1042, "a@x"]]))
    job.refresh_from_db()
    assert result_rows(job)[1] == ["1042", "a@x", "X1"]
    assert CodeIssue.objects.get().customer == "1042"


def test_assignment_refuses_a_list_without_a_customer_column_or_an_inactive_pool():
    pool = make_pool(launched=True)
    with pytest.raises(ValidationError):
        assignment_start(pool=pool, file=csv_upload("Email\na@x\n"))
    with pytest.raises(ValidationError):
        assignment_start(pool=make_pool(), file=csv_upload("Customer\na\n"))


def test_release_from_an_assignment_gives_back_only_unredeemed_codes():
    pool = make_pool(launched=True)
    make_codes(pool, ["R1", "R2"])
    job = assignment_start(pool=pool, file=csv_upload("Customer\na\nb\n"))
    code_redeem(code="R2", customer="b", pool=pool)

    counts = assignment_release(job=job, customers=["a", "b", "zed"])

    assert counts == {"released": 1, "redeemed": 1, "held_elsewhere": 0, "not_found": 1}
    assert Code.objects.get(code="R1").status == Code.Status.AVAILABLE
    assert CodeIssue.objects.get(code__code="R1").released_at is not None


def test_admin_upload_report_download_and_release(manager_client):
    pool = make_pool(launched=True)
    make_codes(pool, ["A1", "A2"])
    page = manager_client.get(reverse("admin:pools_pool_change", args=[pool.pk]))
    assert "Assign to customers" in page.content.decode()

    answer = manager_client.post(
        f"{reverse('admin:imports_assignment_add')}?pool={pool.pk}",
        {"file": csv_upload("Customer,Email\nc1,a@x\n")},
    )
    job = Assignment.objects.get()
    assert answer.status_code == 302
    report = manager_client.get(reverse("admin:imports_assignment_change", args=[job.pk]))
    assert "Download the list with codes" in report.content.decode()
    download = manager_client.get(reverse("admin:imports_assignment_result", args=[job.pk]))
    assert b"".join(download.streaming_content).decode().splitlines()[1] == "c1,a@x,A1"
    manager_client.post(
        reverse("admin:imports_assignment_release", args=[job.pk]), {"customers": "c1\n"}
    )
    assert Code.objects.get(code="A1").status == Code.Status.AVAILABLE


CELL = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    extra=st.lists(st.text(alphabet="abcXYZ ", min_size=1, max_size=6), min_size=1, max_size=3),
    rows=st.lists(st.lists(CELL, min_size=1, max_size=4), min_size=1, max_size=20),
    delimiter=st.sampled_from([",", ";", "\t"]),
)
def test_customer_list_reader_returns_every_row_with_its_id_or_refuses_the_file(
    extra, rows, delimiter
):
    """Any table with a Customer column (and another, so that the delimiter shows in the
    header, where the reader looks for it) reads back row for row (blank rows skipped), each
    padded to the header's width; a file whose rows are all blank is refused as a whole."""
    header = ["Customer", *(f"{name}{i}" for i, name in enumerate(extra))]
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows([header, *rows])
    data = out.getvalue().encode()
    expected = [r for r in rows if any(c.strip() for c in r)]
    try:
        table = open_customer_list(io.BytesIO(data), name="list.csv", size=len(data))
    except ImportFileError:
        assert not expected or not data.strip()
        return
    read = [cells for _, cells in table.rows]
    assert table.header[table.customer_index] == "Customer"
    assert len(read) <= len(expected) + sum(c.count("\n") + c.count("\r") for r in rows for c in r)
    assert all(len(cells) >= len(header) for cells in read if isinstance(cells, list))


def test_an_assignment_from_a_pool_not_active_is_refused_on_the_upload_field():
    pool = make_pool()  # a draft

    with pytest.raises(ValidationError) as refused:
        assignment_start(pool=pool, file=csv_upload("Customer\nann\n"))

    assert refused.value.message_dict == {
        "file": ["Codes can be assigned from an active pool only."]
    }
    assert refused.value.error_dict["file"][0].code == "pool_not_active"
    assert not Assignment.objects.exists()


def test_a_list_without_a_customer_column_is_refused_on_the_upload_field():
    pool = make_pool(launched=True)

    with pytest.raises(ValidationError) as refused:
        assignment_start(pool=pool, file=csv_upload("Email\nann@example.com\n", name="m.csv"))

    [message] = refused.value.message_dict["file"]
    assert message.endswith(" Fix the file and upload it again.")
    assert refused.value.error_dict["file"][0].code == "bad_file"


def test_rows_without_a_usable_customer_id_are_rejected_with_the_id_cut_to_200_characters():
    pool = make_pool(launched=True)
    make_codes(pool, ["K1", "K2"])
    too_long = "x" * 201

    job = assignment_start(
        pool=pool,
        file=csv_upload(f"Customer,Email\n,a@x\n{too_long},b@x\nb\x00b,d@x\nann,c@x\n"),
    )
    job.refresh_from_db()

    reason = "No customer id, or one longer than 200 characters or with a NUL character."
    assert job.status == Assignment.Status.COMPLETED, job.message
    # A NUL as its visible symbol: the report's JSON cannot hold one.
    assert job.rejected_sample == [[2, "", reason], [3, "x" * 200, reason], [4, "b\u2400b", reason]]
    assert (job.customers_read, job.codes_issued, job.rows_rejected) == (1, 1, 3)
    issue = CodeIssue.objects.get()
    assert (issue.idempotency_key, issue.issued_by) == ("assignment:ann", f"assignment-{job.pk}")
    written = result_rows(job)
    result_write(job)  # as a job resumed after a kill writes its list
    assert (
        result_rows(job)
        == written
        == [
            ["Customer", "Email", "Code"],
            ["", "a@x", ""],
            [too_long, "b@x", ""],
            ["b\x00b", "d@x", ""],
            ["ann", "c@x", "K1"],
        ]
    )


def test_a_row_that_cannot_be_read_is_rejected_with_its_reason_and_the_rows_after_it_issued():
    from imports.csv_records import QUOTE_NEVER_CLOSED

    pool = make_pool(launched=True)
    make_codes(pool, ["K1", "K2"])

    job = assignment_start(pool=pool, file=csv_upload('Customer,Note\nann,x\ncarl,"open\nbob,y\n'))
    job.refresh_from_db()

    assert job.status == Assignment.Status.COMPLETED
    assert job.rejected_sample == [[3, "", QUOTE_NEVER_CLOSED]]
    assert (job.customers_read, job.codes_issued, job.rows_rejected) == (2, 2, 1)
    assert result_rows(job) == [
        ["Customer", "Note", "Code"],
        ["ann", "x", "K1"],
        ["bob", "y", "K2"],
    ]


def test_the_report_keeps_the_first_rejected_rows_and_customers_left_short(settings, monkeypatch):
    settings.ASSIGN_BATCH_SIZE = 1  # the samples fill up over several slices
    monkeypatch.setattr(Assignment, "SAMPLE", 2)
    pool = make_pool(launched=True)
    make_codes(pool, ["S1"])

    job = assignment_start(
        pool=pool,
        file=csv_upload(
            "Customer,Email\n,a@x\n,b@x\n,c@x\n" + "".join(f"c{i},x\n" for i in range(1, 5))
        ),
    )
    job.refresh_from_db()

    reason = "No customer id, or one longer than 200 characters or with a NUL character."
    assert job.status == Assignment.Status.COMPLETED_WITH_SHORTFALL
    assert (job.rows_rejected, job.codes_issued, job.shortfall) == (3, 1, 3)
    assert job.rejected_sample == [[2, "", reason], [3, "", reason]]
    assert job.short_sample == ["c2", "c3"]


def test_a_slice_whose_issue_came_second_or_was_broken_out_of_a_deadlock_is_done_again(
    settings, monkeypatch
):
    """An issue under the same assignment key committed first (IntegrityError), or the database
    broke a deadlock (40P01): the slice is rolled back and done again, and nobody is left out."""
    settings.ASSIGN_BATCH_SIZE = 1
    pool = make_pool(launched=True)
    make_codes(pool, ["D1", "D2"])
    deadlock = OperationalError("deadlock detected")
    deadlock.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
    faults = [IntegrityError("duplicate key value"), deadlock]
    real_issue = assignments._SliceIssuer.issue

    def issue_after_the_faults(self, customers, **kwargs):
        if faults:
            raise faults.pop(0)
        return real_issue(self, customers, **kwargs)

    monkeypatch.setattr(assignments._SliceIssuer, "issue", issue_after_the_faults)
    job = assignment_start(pool=pool, file=csv_upload("Customer\nc1\nc2\n"))
    job.refresh_from_db()

    assert job.status == Assignment.Status.COMPLETED, job.message
    assert (job.codes_issued, job.rows_done) == (2, 2)
    assert result_rows(job) == [["Customer", "Code"], ["c1", "D1"], ["c2", "D2"]]


def test_a_slice_that_fails_five_times_over_stops_the_job_with_the_reason(monkeypatch):
    pool = make_pool(launched=True)
    make_codes(pool, ["D1"])
    tries = []

    def always_second(self, customers, **kwargs):
        tries.append(customers)
        raise IntegrityError("duplicate key value")

    monkeypatch.setattr(assignments._SliceIssuer, "issue", always_second)
    job = assignment_start(pool=pool, file=csv_upload("Customer\nc1\n"))
    job.refresh_from_db()

    assert job.status == Assignment.Status.FAILED
    assert job.message == (
        "The pool stopped issuing (This idempotency key was used for another customer.); the "
        "customers so far have their codes. Run it again once the pool issues again."
    )
    assert tries == [["c1"]] * 5
    assert (job.rows_done, CodeIssue.objects.count()) == (0, 0)


def test_an_assignment_from_a_multiple_use_pool_gives_every_customer_its_one_code(settings):
    settings.ASSIGN_BATCH_SIZE = 2
    pool = make_pool(launched=True, allow_multiple_use=True)
    make_codes(pool, ["MULTI"])

    job = assignment_start(pool=pool, file=csv_upload("Customer\nc1\nc2\nc3\nc1\n"))
    job.refresh_from_db()

    assert job.status == Assignment.Status.COMPLETED, job.message
    assert (job.customers_read, job.codes_issued, job.already_held) == (4, 3, 1)
    assert result_rows(job) == [["Customer", "Code"]] + [
        [c, "MULTI"] for c in ["c1", "c2", "c3", "c1"]
    ]
    assert CodeIssue.objects.filter(code__code="MULTI").count() == 3


def test_a_multiple_use_fallback_gives_its_one_code_to_every_customer_the_pool_cannot_serve():
    pool = make_pool(launched=True)
    spare = make_pool(pool.campaign, launched=True, allow_multiple_use=True)
    Pool.objects.filter(pk=pool.pk).update(fallback_pool=spare)
    make_codes(pool, ["M1"])
    make_codes(spare, ["MULTI"])

    job = assignment_start(pool=pool, file=csv_upload("Customer\nc1\nc2\nc3\n"))
    job.refresh_from_db()

    assert job.status == Assignment.Status.COMPLETED, job.message
    assert (job.codes_issued, job.from_fallback, job.shortfall) == (3, 2, 0)
    assert result_rows(job) == [
        ["Customer", "Code"],
        ["c1", "M1"],
        ["c2", "MULTI"],
        ["c3", "MULTI"],
    ]


def test_a_failed_assignment_is_run_again_from_its_report(manager_client):
    pool = make_pool(launched=True)
    make_codes(pool, ["AG1"])
    job = assignment_start(pool=pool, file=csv_upload("Customer\nc1\n"))
    Assignment.objects.filter(pk=job.pk).update(status=Assignment.Status.FAILED)
    report = reverse("admin:imports_assignment_change", args=[job.pk])
    rerun = reverse("admin:imports_assignment_rerun", args=[job.pk])
    assert rerun in manager_client.get(report).content.decode()

    response = manager_client.post(rerun, follow=True)

    assert (
        f"Assignment #{job.pk} is queued again: it goes on after the rows it did, and the "
        "customers so far keep their codes."
    ) in response.content.decode()
    job.refresh_from_db()  # run here at once: tasks run in the test's process
    assert (job.status, job.codes_issued) == (Assignment.Status.COMPLETED, 1)
    response = manager_client.post(rerun, follow=True)  # no longer failed
    assert "Only a failed assignment can be run again." in response.content.decode()


def test_the_list_handed_back_shows_formulas_as_text_never_runs_them():
    pool = make_pool(launched=True)
    make_codes(pool, ["K1", "K2"])
    upload = csv_upload('Customer,Note\n=HYPERLINK("http://evil.example"),+1+1\n@SUM(A1),\tlead\n')

    job = assignment_start(pool=pool, file=upload)
    job.refresh_from_db()

    assert result_rows(job)[1:] == [
        ['\'=HYPERLINK("http://evil.example")', "'+1+1", "K1"],
        ["'@SUM(A1)", "'\tlead", "K2"],
    ]
    job.result.delete(save=False)
    Assignment.objects.filter(pk=job.pk).update(result="")
    result_write(Assignment.objects.get(pk=job.pk))
    assert result_rows(Assignment.objects.get(pk=job.pk))[1][0].startswith("'=")


def test_the_list_with_codes_needs_view_permission_on_codes_and_pools_on_every_request(client):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    pool = make_pool(launched=True)
    make_codes(pool, ["A1"])
    job = assignment_start(pool=pool, file=csv_upload("Customer\nc1\n"))
    clerk = get_user_model().objects.create_user("clerk", password="secret-pass", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_assignment"))
    client.force_login(clerk)
    result_url = reverse("admin:imports_assignment_result", args=[job.pk])

    report = client.get(reverse("admin:imports_assignment_change", args=[job.pk]))
    assert "You may not download the list with codes" in report.content.decode()
    assert client.get(result_url).status_code == 403

    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_code", "view_pool"]))
    clerk = get_user_model().objects.get(pk=clerk.pk)
    client.force_login(clerk)
    assert client.get(result_url).status_code == 200


def test_the_report_shows_customer_ids_only_to_staff_who_may_view_the_codes(client):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    pool = make_pool(launched=True)
    make_codes(pool, ["A1"])
    too_long = "LONG" + "x" * 200
    job = assignment_start(pool=pool, file=csv_upload(f"Customer\nc1\n{too_long}\nc-short\n"))
    job.refresh_from_db()
    assert (job.short_sample, job.rejected_sample[0][0]) == (["c-short"], 3)
    clerk = get_user_model().objects.create_user("clerk", password="secret-pass", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_assignment"))
    client.force_login(clerk)
    url = reverse("admin:imports_assignment_change", args=[job.pk])

    page = client.get(url).content.decode()
    assert "c-short" not in page and "LONGxxx" not in page
    assert (
        "Customer ids are not shown: seeing them, like downloading the list with codes, takes "
        "permission to view this pool's codes." in page
    )
    assert "<p>1 in all.</p>" in page  # the count stays
    assert "No customer id, or one longer than 200 characters" in page  # and the reason

    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_code", "view_pool"]))
    client.force_login(get_user_model().objects.get(pk=clerk.pk))
    page = client.get(url).content.decode()
    assert "c-short" in page and "LONGxxx" in page
    assert "Customer ids are not shown" not in page
