"""An assignment's bar moves as it goes: its slices commit (with their progress) about once a
second however slowly the pool issues, not once per ASSIGN_BATCH_SIZE rows."""

import time

import pytest

from imports import assignments
from imports.assignments import assignment_start
from imports.models import Assignment
from tests.factories import make_codes, make_pool
from tests.imports.files import csv_upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("on_commit_at_once", "fails_if_stuck")]


def test_a_slow_assignment_commits_its_progress_every_second_or_so(settings, monkeypatch):
    settings.ASSIGN_BATCH_SIZE = 5000
    pool = make_pool(launched=True)
    customers = 600
    make_codes(pool, [f"C{i}" for i in range(customers)])
    issue = assignments._SliceIssuer.issue

    def slow_issue(self, todo, **kwargs):
        time.sleep(0.004 * len(todo))  # 250 customers a second: 2.4 s for the list
        return issue(self, todo, **kwargs)

    monkeypatch.setattr(assignments._SliceIssuer, "issue", slow_issue)
    seen = []  # (when, percent) at each committed slice
    commit = assignments._slice_transaction

    def recorded(job, *args):
        codes = commit(job, *args)
        percent = Assignment.objects.get(pk=job.pk).progress_percent
        seen.append((time.monotonic(), percent))
        return codes

    monkeypatch.setattr(assignments, "_slice_transaction", recorded)
    lines = "".join(f"customer-{n}\n" for n in range(customers))

    started = time.monotonic()
    job = assignment_start(pool=pool, file=csv_upload("Customer\n" + lines, name="list.csv"))

    job.refresh_from_db()
    assert job.status == Assignment.Status.COMPLETED and job.codes_issued == customers
    times = [started] + [when for when, _ in seen]
    gaps = [round(b - a, 2) for a, b in zip(times, times[1:], strict=False)]
    # Slices sized to about a second of this slow work: the bar moves several times, in order
    # (one slice of ASSIGN_BATCH_SIZE would have held it at 0% to the end).
    percents = [percent for _, percent in seen]
    assert percents == sorted(percents) and len(set(percents)) >= 3, (percents, gaps)
