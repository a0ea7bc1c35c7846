"""Every number a manager reads of a pool (the low-stock e-mail, the home page, the pool page,
its chart, the reports of its jobs) agrees with the others and with the database, after a
scripted day of imports, issues, codes given back, a redemption, a withdrawal and an undo."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from imports.engine import import_run
from imports.services import import_text_start, import_undo
from notifications.services import subscription_add
from pools.code_services import (
    addition_undo_run,
    code_issue,
    code_redeem,
    code_release,
    codes_withdraw,
)
from pools.models import Code, CodeIssue
from pools.services import pool_launch
from tests.factories import make_campaign, make_manager, make_pool

pytestmark = pytest.mark.django_db


def imported(pool, text):
    job = import_text_start(pool=pool, text=text)
    import_run(import_id=job.pk)
    job.refresh_from_db()
    return job


def text_of(html: str) -> str:
    """Return the page's text as a reader sees it: no tags, one space between words."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def read(pattern: str, text: str) -> tuple[int, ...]:
    """Return the numbers `pattern` finds in `text` (it must find them once, exactly)."""
    (found,) = re.findall(pattern, text)
    found = found if isinstance(found, tuple) else (found,)
    return tuple(int(number.replace(",", "")) for number in found)


def test_the_email_home_page_pool_page_chart_and_reports_tell_the_same_day(
    manager_client, mailoutbox, django_capture_on_commit_callbacks
):
    ann = make_manager("ann", email="ann@example.com")
    pool = make_pool(
        make_campaign("Day"), slug="day-pool", notify_below_enabled=True, notify_below=6
    )
    subscription_add(user=ann, pool=pool)
    with django_capture_on_commit_callbacks(execute=True):
        first = imported(pool, "\n".join(f"A{i}" for i in range(12)))
        pool_launch(pool=pool)
        issued = [
            code_issue(pool=pool, customer=f"c{n}", idempotency_key=f"k{n}") for n in range(4)
        ]
        code_release(pool=pool, code=issued[0].code, idempotency_key="k0")
        code_redeem(code=issued[1].code, customer="c1")
        withdrawal = codes_withdraw(pool=pool, codes=["A10", "A11"])
        second = imported(pool, "B1\nB2\nB3")
        undo = import_undo(job=second)
        addition_undo_run(undo_id=undo.pk)
        for n in range(4, 9):  # down through the threshold: one alert, at the end of the day
            code_issue(pool=pool, customer=f"c{n}", idempotency_key=f"k{n}")

    # The database
    codes = {s: Code.objects.filter(pool=pool, status=s).count() for s in Code.Status.values}
    issues = CodeIssue.objects.filter(pool=pool)
    stock = codes["available"]
    issued_today, released_today = issues.count(), issues.filter(released_at__isnull=False).count()
    assert (stock, issued_today, released_today) == (2, 9, 1)  # the script did what it says

    # The reports of the day's jobs
    reports = {
        name: text_of(manager_client.get(url).content.decode())
        for name, url in {
            "first": reverse("admin:imports_import_change", args=[first.pk]),
            "second": reverse("admin:imports_import_change", args=[second.pk]),
            "withdrawal": reverse("admin:pools_withdrawal_change", args=[withdrawal.pk]),
            "undo": reverse("admin:pools_additionundo_change", args=[undo.pk]),
        }.items()
    }
    added = read(r"Codes added (\d+)", reports["first"])[0]
    added += read(r"Codes added (\d+)", reports["second"])[0]
    withdrawn, withdrawn_from_stock = read(
        r"Withdrawn (\d+) \((\d+) of them were in stock\)", reports["withdrawal"]
    )
    (removed,) = read(r"Removed (\d+)", reports["undo"])
    assert stock == added - (issued_today - released_today) - withdrawn_from_stock - removed
    assert withdrawn == codes["withdrawn"]

    # The e-mail
    (message,) = mailoutbox
    assert read(r"Codes left to issue: (\d+)", message.body) == (stock,)
    assert read(r"Issued in the last 24 hours: (\d+)", message.body) == (issued_today,)
    assert read(r"Given back in the last 24 hours: (\d+)", message.body) == (released_today,)

    # The home page
    home = text_of(manager_client.get(reverse("admin:index")).content.decode())
    assert read(r"day-pool \(Day\): (\d+) codes? left, alert below (\d+)", home) == (stock, 6)
    assert read(r"day-pool : (\d+) left \(alert below (\d+)\) at [\d:]+, sent to ann", home) == (
        stock,
        6,
    )

    # The pool page and its chart
    html = manager_client.get(reverse("admin:pools_pool_change", args=[pool.pk])).content.decode()
    page = text_of(html)
    assert read(
        r"(\d+) available · (\d+) issued · (\d+) redeemed · (\d+) withdrawn low stock", page
    ) == (stock, codes["issued"], codes["redeemed"], codes["withdrawn"])
    assert read(r"stock \(can still be issued\): (\d+)", page) == (stock,)
    today = f"{timezone.localdate():%Y-%m-%d}"
    titles = re.findall(r"<title>([^<]*)</title>", html)
    hovers = {title.split(" ", 1)[1]: title.split(":")[0] for title in titles if title[:2] == "20"}
    assert set(hovers.values()) == {today}
    assert set(hovers) == {
        f"stock {stock}",
        f"{added} added",
        f"{issued_today} issued",
        f"{released_today} given back",
        f"{codes['redeemed']} redeemed",
        f"{withdrawn_from_stock + removed} withdrawn",
    }
    row = (added, issued_today, released_today, codes["redeemed"], withdrawn_from_stock + removed)
    assert read(rf"{today} (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", page) == (*row, stock)
