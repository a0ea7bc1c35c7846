"""The product's screens at 1280 and 800 px: nothing overflows its container or the window; at
400 px the page still fits the window; and axe-core finds no serious or critical problem."""

import json
from pathlib import Path

import pytest
from django.urls import reverse

from imports.engine import import_run
from imports.models import Import
from imports.services import import_text_start
from pools.code_services import code_issue
from tests.factories import make_campaign, make_codes, make_manager, make_pool

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

AXE = Path(__file__).resolve().parents[2] / "var/axe/node_modules/axe-core/axe.min.js"

# Every element of the page's content whose box leaves the window, or leaves an ancestor that
# clips or scrolls it (overflow other than visible): cut off, or reachable only by a scrollbar
# inside the page.
OVERFLOWING = """() => {
    const width = document.documentElement.clientWidth;
    const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
        + (typeof e.className === 'string' && e.className
            ? '.' + e.className.split(' ').join('.') : '');
    const found = [];
    for (const element of document.querySelectorAll('#content *, #header *, .breadcrumbs *')) {
        const box = element.getBoundingClientRect();
        if (!box.width || !box.height || !element.getClientRects().length) {
            continue;  // not shown (closed details, hidden templates)
        }
        if (box.right > width + 1 || box.left < -1) {
            found.push(name(element) + ' leaves the window ('
                + Math.round(box.right) + ' > ' + width + ')');
            continue;
        }
        for (let a = element.parentElement; a && a !== document.body; a = a.parentElement) {
            const style = getComputedStyle(a);
            if (style.overflowX !== 'visible' || style.overflowY === 'hidden') {
                const outer = a.getBoundingClientRect();
                if (outer.width <= 1 || element.closest('code.shortened') === a) {
                    break;  // read by screen readers only, or shortened on purpose
                }
                if (box.right > outer.right + 1 || box.left < outer.left - 1) {
                    found.push(name(element) + ' overflows ' + name(a));
                }
                break;
            }
        }
    }
    return found.slice(0, 10);
}"""


@pytest.fixture
def screens(live_server):
    make_manager("ada", email="ada@example.com")
    campaign = make_campaign("Black Friday 2026 — newsletter, app and shop " * 2)
    pool = make_pool(
        campaign,
        description="We created this pool because the CRM team asked for unique codes " * 4,
        notify_below_enabled=True,
        notify_below=10_000,
        launched=True,
    )
    make_codes(pool, [f"CODE-{n:05}" for n in range(3000)] + ["L" * 60])
    code_issue(pool=pool, customer="customer-" + "x" * 80)
    long_value = "BAD " + "y" * 300
    job = import_text_start(pool=pool, text=f"OK-1\n{long_value}\nOK-2 OK-3\n")
    import_run(import_id=job.pk)
    job = Import.objects.get(pk=job.pk)
    return {
        "pool page": reverse("admin:pools_pool_change", args=[pool.pk]),
        "add codes": f"{reverse('admin:imports_import_add')}?pool={pool.pk}",
        "report": reverse("admin:imports_import_change", args=[job.pk]),
        "codes list": f"{reverse('admin:pools_code_changelist')}?pool__id__exact={pool.pk}",
        "imports list": reverse("admin:imports_import_changelist"),
        "pools list": reverse("admin:pools_pool_changelist"),
        "message preview": reverse("admin:pools_pool_message_preview")
        + "?text=Hi+%7B%7B+promo.nope+%7D%7D",
        "home": reverse("admin:index"),
    }


def log_in(page, url):
    page.goto(f"{url}/admin/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("secret-pass")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Campaigns and promo code pools").wait_for()


def test_nothing_is_cut_off_at_1280_and_800_px_and_400_px_still_fits(
    browser_page, live_server, screens, screenshot
):
    page = browser_page
    log_in(page, live_server.url)
    cut_off = {}
    for width in (1280, 800):
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in screens.items():
            page.goto(f"{live_server.url}{path}")
            if found := page.evaluate(OVERFLOWING):
                cut_off[f"{name} at {width} px"] = found
    assert not cut_off, json.dumps(cut_off, indent=1)
    page.set_viewport_size({"width": 400, "height": 800})
    for name, path in screens.items():
        page.goto(f"{live_server.url}{path}")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} is {overflow}px too wide at 400 px: " + json.dumps(
            page.evaluate(OVERFLOWING)
        )


def test_axe_finds_no_serious_or_critical_problem(browser_page, live_server, screens):
    if not AXE.exists():
        pytest.skip("axe-core is not installed: `make install` installs it from npm")
    page = browser_page
    log_in(page, live_server.url)
    # Only this context bypasses the page's Content-Security-Policy, to inject axe-core.
    context = page.context.browser.new_context(
        bypass_csp=True,
        storage_state=page.context.storage_state(),
        viewport={"width": 1280, "height": 900},
    )
    axe_page = context.new_page()
    problems = {}
    for name, path in screens.items():
        axe_page.goto(f"{live_server.url}{path}")
        axe_page.add_script_tag(path=str(AXE))
        violations = axe_page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".filter(v => ['serious', 'critical'].includes(v.impact))"
            ".map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))"
        )
        if violations:
            problems[name] = violations
    context.close()
    assert not problems, json.dumps(problems, indent=1)
