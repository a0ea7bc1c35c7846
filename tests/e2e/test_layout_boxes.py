"""Screens measured in the browser: no two things drawn over each other, no column hidden behind a
scrollbar, no word broken in the middle, no field cutting off its value; and the pool form's
pool ID following the description after a refused launch."""

import json
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from imports.generation import DEFAULT_ALPHABET
from imports.models import Assignment
from pools.code_services import code_issue
from tests.factories import make_campaign, make_codes, make_manager, make_pool

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# The boxes of the first selector's elements that are drawn over the text of the second's.
OVERLAPPING = """([first, second]) => {
    const texts = [];
    for (const element of document.querySelectorAll(second)) {
        const range = document.createRange();
        range.selectNodeContents(element);
        for (const box of range.getClientRects()) {
            texts.push([element.textContent.trim().slice(0, 30), box]);
        }
    }
    const found = [];
    for (const element of document.querySelectorAll(first)) {
        const one = element.getBoundingClientRect();
        if (!one.width || !one.height) {
            continue;
        }
        for (const [text, other] of texts) {
            if (one.left < other.right - 1 && other.left < one.right - 1
                && one.top < other.bottom - 1 && other.top < one.bottom - 1) {
                found.push(element.textContent.trim() + ' over ' + text);
            }
        }
    }
    return found;
}"""

# Words of the matched elements drawn on two lines (broken in the middle); a break at a hyphen
# or a space is fine.
BROKEN_WORDS = """(selector) => {
    const found = [];
    for (const element of document.querySelectorAll(selector)) {
        const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (const match of node.textContent.matchAll(/[^\\s-]+/g)) {
                const range = document.createRange();
                range.setStart(node, match.index);
                range.setEnd(node, match.index + match[0].length);
                const tops = new Set(Array.from(range.getClientRects())
                    .filter((r) => r.width > 0).map((r) => Math.round(r.top)));
                if (tops.size > 1) {
                    found.push(match[0]);
                }
            }
        }
    }
    return found;
}"""

# Columns of a list's table that are not fully in view: past the window or the list's box.
HIDDEN_COLUMNS = """() => {
    const results = document.querySelector('#changelist .results');
    const outer = results.getBoundingClientRect();
    const width = document.documentElement.clientWidth;
    return Array.from(document.querySelectorAll('#result_list thead th'))
        .filter((th) => { const box = th.getBoundingClientRect();
            return box.right > Math.min(outer.right, width) + 1; })
        .map((th) => th.textContent.trim())
        .concat(results.scrollWidth > results.clientWidth + 1 ? ['(the list scrolls)'] : [])
        .concat(document.documentElement.scrollWidth > width ? ['(the page scrolls)'] : []);
}"""


@pytest.fixture
def screens(live_server):
    user = make_manager("ada", email="ada@example.com")
    campaign = make_campaign("Black Friday 2026 — newsletter, app and shop")
    pool = make_pool(
        campaign,
        description="Welcome discount for newsletter subscribers " * 3,
        slug="welcome-discount-for-newsletter-subscribers",
        launched=True,
    )
    make_codes(
        pool,
        [f"CODE-{n:05}" for n in range(30)],
        issue_start=timezone.now() - timedelta(days=1),
        issue_end=timezone.now() + timedelta(days=30),
        available_from=timezone.now() - timedelta(days=1),
        available_till=timezone.now() + timedelta(days=60),
    )
    code_issue(pool=pool, customer="customer-42")
    for n in range(3):
        Assignment.objects.create(
            pool=pool,
            file=ContentFile(b"Customer\nc1\n", name="list.csv"),
            file_name=f"newsletter-subscribers-december-{n}.csv",
            created_by=user,
            status=Assignment.Status.COMPLETED_WITH_SHORTFALL,
            codes_issued=12_345,
            already_held=1_234,
            shortfall=4_321,
        )
    return {
        "pool": pool,
        "pool page": reverse("admin:pools_pool_change", args=[pool.pk]),
        "assignments": reverse("admin:imports_assignment_changelist"),
        "codes list": f"{reverse('admin:pools_code_changelist')}?pool__id__exact={pool.pk}",
        "add codes": f"{reverse('admin:imports_import_add')}?pool={make_pool(campaign).pk}",
        "add pool": f"{reverse('admin:pools_pool_add')}?campaign={campaign.pk}",
    }


def log_in(page, url):
    page.goto(f"{url}/admin/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("secret-pass")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Campaigns and promo code pools").wait_for()


def test_screens_at_1280_800_and_400_px(browser_page, live_server, screens):
    page = browser_page
    log_in(page, live_server.url)
    wrong = {}
    for width in (1280, 800, 400):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{live_server.url}{screens['pool page']}")
        if found := page.evaluate(
            OVERLAPPING, ["#content .object-tools a", "#content h1, #content h2"]
        ):
            wrong[f"pool page at {width} px"] = found
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        if overflow > 0:
            wrong[f"pool page at {width} px is wider than the window by"] = overflow
        if width == 400:
            continue
        page.goto(f"{live_server.url}{screens['assignments']}")
        if found := page.evaluate(HIDDEN_COLUMNS):
            wrong[f"assignments at {width} px hide"] = found
        page.goto(f"{live_server.url}{screens['codes list']}")
        if found := page.evaluate(BROKEN_WORDS, "#result_list thead th"):
            wrong[f"codes list headers at {width} px break"] = found
        if found := page.evaluate(HIDDEN_COLUMNS):
            wrong[f"codes list at {width} px hides"] = found
        page.goto(f"{live_server.url}{screens['add codes']}")
        alphabet = page.locator("#generate-form input[name$='alphabet']")
        assert alphabet.input_value() == DEFAULT_ALPHABET
        if alphabet.evaluate("(e) => e.scrollWidth > e.clientWidth"):
            wrong[f"the alphabet field at {width} px"] = "cuts off the default alphabet"
    assert not wrong, json.dumps(wrong, indent=1)


def test_pool_id_follows_the_description_after_a_refused_launch(browser_page, live_server, screens):
    page = browser_page
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}{screens['add pool']}")
    page.get_by_role("button", name="Launch", exact=True).click()
    page.locator(".errorlist, .messagelist .error").first.wait_for()

    page.locator("#id_description").fill("Spring sale for loyal customers")

    assert page.locator("#id_slug").input_value() == "spring-sale-loyal"
    assert page.locator("#id_template_parameter").input_value() == "SPRING_SALE_LOYAL"
    # A pool ID the manager typed is left alone.
    page.locator("#id_slug").fill("my-own")
    page.locator("#id_description").fill("Autumn sale")
    assert page.locator("#id_slug").input_value() == "my-own"
