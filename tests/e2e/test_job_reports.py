"""What a job's report tells a manager in the browser: one status in one place while it runs,
its bar, what an undo took away from an import; and a workbook too long to write at once is a
job with its page rather than a wait without a word."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from imports.engine import import_run
from imports.models import Import
from imports.services import import_text_start
from pools.code_services import addition_undo_start, code_issue, codes_withdraw
from pools.models import AdditionUndo, Withdrawal
from tests.factories import make_codes, make_manager, make_pool

# Not `integration`: the jobs run at once, in the server's process.
pytestmark = [pytest.mark.e2e]


def log_in(page, url):
    page.goto(f"{url}/admin/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("secret-pass")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/admin/")


def report_cell(page, label: str):
    return page.locator("table.import-report tr", has=page.get_by_role("rowheader", name=label))


def test_a_running_import_no_longer_says_it_waits_for_a_worker(browser_page, live_server):
    page = browser_page
    make_manager("ada")
    pool = make_pool(launched=True)
    job = import_text_start(pool=pool, text="A-1\nA-2\n")
    # As a worker would find it: queued, then running a third of the way.
    Import.objects.filter(pk=job.pk).update(
        status=Import.Status.QUEUED,
        started_at=None,
        finished_at=None,
        codes_added=0,
        progress_done=0,
    )
    log_in(page, live_server.url)
    page.goto(live_server.url + reverse("admin:imports_import_change", args=[job.pk]))
    status = report_cell(page, "Status")
    assert "waiting for a worker" in page.locator("#content-main").inner_text()
    Import.objects.filter(pk=job.pk).update(
        status=Import.Status.RUNNING,
        started_at=timezone.now(),
        progress_done=33,
        progress_total=100,
    )
    page.locator("[data-field=percent]", has_text="33%").wait_for()
    shown = page.locator("#content-main").inner_text()
    assert "Running" in status.inner_text()
    assert "waiting for a worker" not in shown


def test_after_an_undo_the_import_says_what_it_removed_and_no_longer_offers_it(
    browser_page, live_server
):
    page = browser_page
    make_manager("ada")
    pool = make_pool(launched=True)
    make_codes(pool, ["OLD-1"])
    job = import_text_start(pool=pool, text="NEW-1\nNEW-2\nNEW-3\nNEW-4\n")
    import_run(import_id=job.pk)
    for customer in ("ann", "bob", "cid", "dan"):  # OLD-1 and three of the import's codes
        code_issue(pool=pool, customer=customer)
    report = live_server.url + reverse("admin:imports_import_change", args=[job.pk])

    log_in(page, live_server.url)
    page.goto(report)
    page.get_by_role("link", name="Remove the codes this import added").click()
    page.get_by_role("button", name=re.compile("Remove")).click()
    page.wait_for_url("**/additionundo/**")

    # The pool's history names the import whose codes went, and leads to its report.
    page.goto(live_server.url + reverse("admin:pools_pool_change", args=[pool.pk]))
    row = page.locator("table.pool-history tr", has_text="Removed 1 of the 4 codes")
    row.get_by_role("link", name=f"import #{job.pk}").click()
    page.wait_for_url(report)
    assert "(1 of them removed since by an undo)" in report_cell(page, "Codes added").inner_text()
    undone = report_cell(page, "Undone").inner_text()
    assert re.fullmatch(
        r"Removed 1 of the 4 codes on .+, by undo #\d+; 3 kept, with their history\.",
        undone.removeprefix("Undone").strip(),
    ), undone
    assert page.get_by_role("link", name="Remove the codes this import added").count() == 0


def test_a_running_withdrawal_and_undo_show_their_bar(browser_page, live_server):
    page = browser_page
    make_manager("ada")
    pool = make_pool(launched=True)
    make_codes(pool, [f"W-{n}" for n in range(10)])
    withdrawal = codes_withdraw(pool=pool, codes=[f"W-{n}" for n in range(10)])
    job = import_text_start(pool=pool, text="U-1\nU-2\n")
    undo = addition_undo_start(addition=Import.objects.get(pk=job.pk).addition)
    # As a worker leaves them halfway.
    Withdrawal.objects.filter(pk=withdrawal.pk).update(
        status=Withdrawal.Status.RUNNING, codes_done=4, codes_withdrawn=4
    )
    AdditionUndo.objects.filter(pk=undo.pk).update(
        status=AdditionUndo.Status.RUNNING, progress_done=1, progress_total=2
    )
    log_in(page, live_server.url)
    page.goto(live_server.url + reverse("admin:pools_withdrawal_change", args=[withdrawal.pk]))
    bar = page.get_by_role("progressbar", name="Progress")
    assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("4", "10")
    page.goto(live_server.url + reverse("admin:pools_additionundo_change", args=[undo.pk]))
    assert page.get_by_role("progressbar", name="Progress").get_attribute("value") == "50"


def test_a_workbook_of_thousands_of_codes_is_a_job_with_its_bar(browser_page, live_server):
    page = browser_page
    make_manager("ada")
    pool = make_pool(launched=True)
    make_codes(pool, [f"X-{n:05}" for n in range(3_000)])
    log_in(page, live_server.url)
    page.goto(
        live_server.url + reverse("admin:pools_code_changelist") + f"?pool__id__exact={pool.pk}"
    )
    # The page answers at once with what will happen, rather than a wait with no word.
    page.get_by_role("link", name="Export XLSX").click()
    page.get_by_role("button", name="Start the export").click()
    page.wait_for_url("**/codeexport/**", timeout=60_000)
    page.get_by_text("Task number").wait_for()
