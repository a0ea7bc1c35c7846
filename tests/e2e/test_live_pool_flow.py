"""A live pool's life in a real browser: pause, resume and end; withdrawing a pasted list;
undoing an import; exporting a big import's rejected rows; the launch confirmation."""

import csv

import pytest
from playwright.sync_api import expect

from imports.engine import import_run
from imports.services import import_file_start, import_text_start
from pools import export_services, selectors
from pools.models import Code, Pool, PoolEvent
from tests.factories import make_codes, make_manager, make_pool
from tests.imports.files import csv_upload

pytestmark = [pytest.mark.e2e]


def log_in(page, url, username="lea"):
    make_manager(username, email=f"{username}@example.com")
    page.goto(f"{url}/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("secret-pass")
    page.get_by_role("button", name="Log in").click()


def test_pause_resume_then_end_a_pool(browser_page, live_server):
    page = browser_page
    pool = make_pool(description="Live codes", launched=True)
    make_codes(pool, ["LIVE-1", "LIVE-2"])
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/pools/pool/{pool.pk}/change/")

    page.get_by_role("link", name="Pause", exact=True).click()
    page.get_by_label("Reason").fill("Codes leaked on a forum")
    page.get_by_role("button", name="Pause").click()
    page.get_by_text("is paused").wait_for()
    expect(page.locator(".pool-history")).to_contain_text("Codes leaked on a forum")
    assert Pool.objects.get().status == Pool.Status.PAUSED

    page.get_by_role("link", name="Resume").click()
    page.get_by_role("button", name="Resume").click()
    page.get_by_text("is active again").wait_for()

    page.get_by_role("link", name="End", exact=True).click()
    page.get_by_label("Stop redemptions too").check()
    page.get_by_role("button", name="End").click()
    page.get_by_text("can no longer be redeemed").wait_for()
    expect(page.get_by_role("link", name="Pause", exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="Resume")).to_have_count(0)
    assert list(PoolEvent.objects.values_list("action", flat=True)) == [
        "ended_stopped",
        "resumed",
        "paused",
        "launched",
    ]


def test_withdraw_a_pasted_list_of_leaked_codes(browser_page, live_server):
    page = browser_page
    pool = make_pool(description="Leaky", launched=True)
    make_codes(pool, ["LEAK-1", "LEAK-2", "SAFE-1"])
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/pools/pool/{pool.pk}/change/")

    page.get_by_role("link", name="Withdraw codes").click()
    page.get_by_label("Codes to withdraw").fill("LEAK-1\nLEAK-2, NOT-OURS")
    page.get_by_label("Reason").fill("Posted on a deal site")
    page.get_by_role("button", name="Withdraw").click()

    page.get_by_text("Withdrew 2 of 3 codes").wait_for()
    expect(page.locator(".withdrawal-report")).to_contain_text("Posted on a deal site")
    page.get_by_text("NOT-OURS").wait_for()
    assert Code.objects.filter(status=Code.Status.WITHDRAWN).count() == 2


def test_undo_an_import_from_its_report(browser_page, live_server, live_worker):
    page = browser_page
    pool = make_pool(description="Wrong pool", launched=True)
    job = import_text_start(pool=pool, text="WRONG-1\nWRONG-2\nWRONG-3")
    import_run(import_id=job.pk)
    from pools.code_services import code_issue

    code_issue(pool=pool, customer="cust-1")
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/imports/import/{job.pk}/change/")

    page.get_by_role("link", name="Remove the codes this import added").click()
    page.get_by_text("2 codes will be removed").wait_for()
    page.get_by_role("button", name="Remove 2 codes").click()

    # The undo is a job: its report follows it (refreshing itself) until the worker is done.
    page.get_by_text(f"Removing the codes import #{job.pk} added").wait_for()
    expect(page.locator("[data-field=kept]")).to_contain_text("1 issued", timeout=30_000)
    expect(page.locator("[data-field=removed]")).to_contain_text("2 ")
    assert list(Code.objects.values_list("code", flat=True)) == ["WRONG-1"]

    page.goto(f"{live_server.url}/admin/imports/import/{job.pk}/change/")
    expect(page.locator(".import-undo")).to_contain_text("Completed, 2 codes removed, 1 kept")
    expect(page.get_by_role("link", name="Remove the codes this import added")).to_have_count(0)


def test_launch_asks_first_and_warns_of_an_empty_pool(browser_page, live_server):
    page = browser_page
    pool = make_pool(description="Empty so far")
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/pools/pool/{pool.pk}/change/")

    page.get_by_role("button", name="Launch").click()
    page.get_by_text(str(selectors.NO_CODES)).wait_for()
    assert Pool.objects.get().status == Pool.Status.DRAFT
    page.get_by_role("button", name="Launch").click()

    page.get_by_text("is launched and active").wait_for()
    assert Pool.objects.get().status == Pool.Status.ACTIVE


def test_export_the_rejected_rows_of_a_big_import(
    browser_page, live_server, live_worker, monkeypatch
):
    """Past the at-once limit the report's buttons start an export job, which the worker
    writes; its page follows it and offers the file."""
    monkeypatch.setattr(export_services, "EXPORT_AT_ONCE_MAX", 2)
    page = browser_page
    upload = csv_upload("Code,Issue-start\nGOOD-1,\nBAD-1,x\nBAD-2,x\nBAD-3,x\n")
    job = import_file_start(pool=make_pool(), file=upload)
    import_run(import_id=job.pk)
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/imports/import/{job.pk}/change/")

    page.get_by_role("button", name="Export as CSV").click()
    page.get_by_text("Task number").wait_for()
    # The page refreshes itself until the worker is done.
    download_link = page.get_by_role("link", name=f"Download import-{job.pk}-rejected-rows.csv")
    download_link.wait_for(timeout=60_000)
    with page.expect_download() as download:
        download_link.click()
    with open(download.value.path(), encoding="utf-8-sig") as file:
        rows = list(csv.reader(file))
    assert [row[0] for row in rows] == ["Code", "BAD-1", "BAD-2", "BAD-3"]
    assert rows[1][-1].startswith("Row 3, Issue-start: “x” is not a date")
