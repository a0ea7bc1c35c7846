"""An assignment never puts a dead code in front of a customer: a withdrawn or expired code is
replaced (and counted), a redeemed one is reported and not sent, in the list with codes too."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from imports.assignment_results import result_write
from imports.assignments import assignment_release, assignment_start
from imports.models import Assignment
from pools.code_services import code_issue, code_redeem, code_release, codes_withdraw
from pools.models import Code
from tests.factories import make_codes, make_pool, result_rows
from tests.imports.files import csv_upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("on_commit_at_once", "fails_if_stuck")]


def pool_with_holders():
    """A pool whose customers hold: ann a withdrawn code, bob an expired one, cat one given
    back, dan one he redeemed, eve a live one; fay holds nothing."""
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{i}" for i in range(1, 10)])
    for customer in ("ann", "bob", "cat", "dan", "eve"):
        code_issue(pool=pool, customer=customer, idempotency_key=f"welcome-{customer}")
    codes_withdraw(pool=pool, codes=["C1"])
    Code.objects.filter(code="C2").update(available_till=timezone.now() - timedelta(hours=1))
    code_release(pool=pool, code="C3", idempotency_key="welcome-cat")
    code_redeem(code="C4", customer="dan", pool=pool)
    return pool


LIST = "Customer\nann\nbob\ncat\ndan\neve\nfay\n"


# PostgreSQL: the claim goes on after the last code it claimed (elsewhere it takes the first
# code in stock, which may be the one given back).
@pytest.mark.postgresql
@pytest.mark.parametrize("batch_size", [5000, 2])
def test_dead_codes_are_replaced_and_a_redeemed_one_is_not_sent(settings, batch_size):
    settings.ASSIGN_BATCH_SIZE = batch_size
    pool = pool_with_holders()

    job = assignment_start(pool=pool, file=csv_upload(LIST))
    job.refresh_from_db()

    assert job.status == Assignment.Status.COMPLETED, job.message
    counts = (
        job.customers_read,
        job.codes_issued,
        job.codes_replaced,
        job.already_held,
        job.already_redeemed,
        job.shortfall,
    )
    assert counts == (6, 4, 2, 1, 1, 0)
    # Claims go on after the last code claimed (C5): C3, given back, stays in stock.
    assert result_rows(job) == [
        ["Customer", "Code"],
        ["ann", "C6"],
        ["bob", "C7"],
        ["cat", "C8"],
        ["dan", ""],
        ["eve", "C5"],
        ["fay", "C9"],
    ]
    rows = result_rows(job)

    # Written again from the codes held (as a resumed job writes it): the same list.
    result_write(job)
    job.refresh_from_db()
    assert result_rows(job) == rows


def test_running_the_list_again_sends_the_replacements_and_counts_nothing_replaced():
    pool = pool_with_holders()
    first = assignment_start(pool=pool, file=csv_upload(LIST))
    first.refresh_from_db()

    second = assignment_start(pool=pool, file=csv_upload(LIST))
    second.refresh_from_db()

    assert (second.codes_issued, second.codes_replaced, second.already_held) == (0, 0, 5)
    assert second.already_redeemed == 1
    assert result_rows(second) == result_rows(first)


def test_release_names_who_redeemed_and_skips_a_dead_code():
    pool = pool_with_holders()
    job = assignment_start(pool=pool, file=csv_upload("Customer\neve\n"))
    codes_withdraw(pool=pool, codes=["C5"])

    counts = assignment_release(job=job, customers=["dan", "eve"])

    assert counts == {"released": 0, "redeemed": 1, "held_elsewhere": 0, "not_found": 1}


def test_the_report_page_shows_replaced_and_redeemed_counts(manager_client):
    pool = pool_with_holders()
    job = assignment_start(pool=pool, file=csv_upload(LIST))

    page = manager_client.get(reverse("admin:imports_assignment_change", args=[job.pk]))

    text = page.content.decode()
    assert (
        '<tr><th scope="row">Codes replaced (the one held was withdrawn or expired)</th>'
        "<td>2</td></tr>"
    ) in text
    assert (
        '<tr><th scope="row">Already redeemed a code of this pool (sent nothing)</th>'
        "<td>1</td></tr>"
    ) in text


def test_give_back_tells_who_holds_a_code_no_assignment_issued(manager_client):
    pool = pool_with_holders()
    job = assignment_start(pool=pool, file=csv_upload(LIST))
    job.refresh_from_db()
    # eve kept her code from the API; fay's came from this assignment; zed is not in the list.
    assert [row for row in result_rows(job) if row[0] in ("eve", "fay")][0] == ["eve", "C5"]

    answer = manager_client.post(
        reverse("admin:imports_assignment_release", args=[job.pk]),
        {"customers": "eve\nfay\ndan\nzed\n"},
        follow=True,
    )

    told = [str(message) for message in answer.context["messages"]]
    assert told == [
        "Gave back 1 code. 1 code was already redeemed and stays. 1 customer holds a code that "
        "no assignment issued (it came from the API or was marked as issued); it was not given "
        "back. 1 customer has no code in this pool to give back."
    ]
    assert Code.objects.get(code="C5").status == Code.Status.ISSUED
