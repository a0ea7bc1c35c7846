"""No dead end in the admin: with data in every model, every Add, the first row's Change and
every button and link of every list and change page leads to a page that works (no debug page,
no 404, no 500); every admin action and every form button of a change page too."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from imports.assignments import assignment_run, assignment_start
from imports.engine import import_run
from imports.models import Import
from imports.services import import_text_start
from notifications.services import subscription_add
from pools.code_services import addition_undo_start, code_issue, codes_withdraw
from pools.export_services import code_export_filters, code_export_start
from tests.factories import make_api_key, make_campaign, make_codes, make_manager, make_pool

# Not `integration`: the jobs the data and the buttons start run at once, in the server's process.
pytestmark = [pytest.mark.e2e]

BROKEN = re.compile(r"Traceback|Using the URLconf|Page not found|Server Error|No such")


@pytest.fixture
def every_model(live_server):
    get_user_model().objects.create_superuser("root", "root@example.com", "secret-pass")
    manager = make_manager("ada", email="ada@example.com")
    campaign = make_campaign("Spring sale")
    pool = make_pool(campaign, description="Spring newsletter", launched=True)
    make_codes(pool, [f"SPRING-{n:03}" for n in range(40)])
    make_pool(campaign, description="Summer draft")
    code_issue(pool=pool, customer="ann")
    job = import_text_start(pool=pool, text="NEW-1\nNEW-2\nNEW-3\n", user=manager)
    import_run(import_id=job.pk)
    job = Import.objects.get(pk=job.pk)
    undone = import_text_start(pool=pool, text="OLD-1\nOLD-2\n", user=manager)
    import_run(import_id=undone.pk)
    addition_undo_start(addition=Import.objects.get(pk=undone.pk).addition, user=manager)
    assignment = assignment_start(
        pool=pool,
        file=SimpleUploadedFile("list.csv", b"Customer\nbob\ncid\n", "text/csv"),
        user=manager,
    )
    assignment_run(assignment_id=assignment.pk)
    codes_withdraw(pool=pool, codes=["SPRING-039"], user=manager, reason="leaked")
    code_export_start(filters=code_export_filters(pool=pool.pk), file_format="csv", user=manager)
    make_api_key("crm")
    subscription_add(user=manager, pool=pool)


def log_in(page, url):
    page.goto(f"{url}/admin/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("secret-pass")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/admin/")


def problem(status: int, body: str) -> str | None:
    if status >= 400:
        return f"HTTP {status}"
    if found := BROKEN.search(body):
        return f"says “{found.group()}”"
    return None


class Crawl:
    def __init__(self, page, url):
        self.page, self.url = page, url
        self.followed: set[str] = set()
        self.problems: list[str] = []

    def open(self, path: str, came_from: str) -> bool:
        """Open a page in the browser; record a problem and return False if it is broken."""
        response = self.page.goto(self.url + path)
        found = problem(response.status, self.page.content())
        if found:
            self.problems.append(f"{path} (from {came_from}): {found}")
        return found is None

    def follow_links(self, selector: str, came_from: str) -> None:
        """Fetch every admin link the selector finds, as a click would (a download too)."""
        # Resolved by the browser (a link may be relative, "?status=…").
        for href in self.page.eval_on_selector_all(selector, "links => links.map(a => a.href)"):
            path = href.removeprefix(self.url).split("#")[0]
            if path == href or not path or path in self.followed:
                continue  # another site, mailto:, an anchor on the page
            self.followed.add(path)
            response = self.page.request.get(self.url + path)
            body = (
                ""
                if "attachment" in response.headers.get("content-disposition", "")
                else (response.text())
            )
            if found := problem(response.status, body):
                self.problems.append(f"{path} (a link on {came_from}): {found}")

    def click_buttons(self, path: str, selector: str) -> None:
        """Click each button the selector finds, on the page opened afresh each time."""
        self.open(path, "the crawl")
        count = self.page.locator(selector).count()
        for index in range(count):
            if not self.open(path, "the crawl"):
                return
            button = self.page.locator(selector).nth(index)
            if not button.is_visible():
                continue
            if not button.evaluate("b => !b.form || b.formNoValidate || b.form.checkValidity()"):
                continue  # the browser asks for a required field first: nothing to follow
            label = button.get_attribute("value") or button.inner_text()
            downloads = []
            self.page.once("download", lambda download, found=downloads: found.append(download))
            try:
                with self.page.expect_navigation(timeout=10_000) as navigation:
                    button.click()
                response = navigation.value
            except PlaywrightTimeout:
                if not downloads:
                    self.problems.append(f"“{label}” on {path}: nothing happened")
                continue
            if response is not None and (found := problem(response.status, self.page.content())):
                self.problems.append(f"“{label}” on {path}: {found}")


# On a change page: its buttons and links; the main form's Save buttons are clicked too.
PAGE_LINKS = "#content-main a[href], .object-tools a[href], .submit-row a[href]"
PAGE_BUTTONS = "#content-main form input[type=submit], #content-main form button[type=submit]"


def test_every_add_change_and_action_of_every_list_and_page_works(
    browser_page, live_server, every_model
):
    page = browser_page
    log_in(page, live_server.url)
    crawl = Crawl(page, live_server.url)
    lists = page.eval_on_selector_all(
        "#content-main a[href]", "links => links.map(a => a.getAttribute('href'))"
    )
    lists = sorted({href for href in lists if re.fullmatch(r"/admin/\w+/\w+/", href)})
    assert len(lists) >= 8, lists
    crawl.follow_links("a.addlink", "the home page")
    for changelist in lists:
        if not crawl.open(changelist, "the home page"):
            continue
        crawl.follow_links(".object-tools a[href], a.addlink", changelist)
        first = page.locator("#result_list tbody tr").first
        change = None
        if first.count():
            change = first.locator("th a, td a").first.get_attribute("href")
        actions = page.locator("select[name=action] option").evaluate_all(
            "options => options.map(o => o.value).filter(Boolean)"
        )
        for action in actions:
            crawl.open(changelist, "the home page")
            page.locator("#result_list tbody input.action-select").first.check()
            page.locator("select[name=action]").select_option(action)
            with page.expect_navigation() as navigation:
                page.locator("button[name=index]").click()
            if found := problem(navigation.value.status, page.content()):
                crawl.problems.append(f"action {action} on {changelist}: {found}")
        if change is None or not crawl.open(change, changelist):
            continue
        crawl.follow_links(PAGE_LINKS, change)
        crawl.click_buttons(change, PAGE_BUTTONS)
    assert not crawl.problems, "\n".join(crawl.problems)
