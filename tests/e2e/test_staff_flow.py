"""The whole journey of a marketing manager, in a real browser, with a real worker."""

from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from imports.models import Import
from pools.models import Code, Pool
from tests.factories import make_manager, make_pool

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

BAD_CSV = (
    "Code;Issue-start;Issue-end\n"
    "WELCOME-1;01.03.2026;31.12.2026\n"
    "WELCOME-2;;\n"
    "WELCOME-1;;\n"
    "BAD CODE;;\n"
    "WELCOME-3;2026-05-01;2026-04-01\n"
    "WELCOME-4;someday;\n"
)


def test_manager_sets_up_fills_and_launches_a_pool(
    browser_page, live_server, live_worker, screenshot
):
    page = browser_page
    make_manager("mia", email="mia@example.com")
    url = live_server.url

    # Log in and create a campaign.
    page.goto(f"{url}/admin/")
    page.get_by_label("Username").fill("mia")
    page.get_by_label("Password").fill("secret-pass")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{url}/admin/pools/campaign/add/")
    page.get_by_label("Name").fill("Spring Sale")
    page.get_by_role("button", name="Save and continue editing").click()

    # Add a pool from the campaign's page; the pool ID fills in while typing.
    page.get_by_role("link", name="Add promo code pool").click()
    assert page.get_by_label("Pool ID").get_attribute("placeholder") == "spring-sale-1"
    page.get_by_label("Description").press_sequentially("Welcome codes")
    expect(page.get_by_label("Pool ID")).to_have_value("welcome-codes")
    expect(page.locator("#id_template_parameter")).to_have_value("WELCOME_CODES")

    # Launch without a description: saved as a draft (its ID then from the campaign's name),
    # and refused with the reason.
    page.get_by_label("Description").fill("")
    page.get_by_role("button", name="Launch").click()
    page.get_by_text("A description is required to launch the pool.").wait_for()
    pool = Pool.objects.get()
    assert (pool.slug, pool.status) == ("spring-sale-1", Pool.Status.DRAFT)

    # The Add codes page: download the template.
    page.get_by_role("link", name="Add codes").click()
    with page.expect_download() as template:
        page.locator("#upload-heading ~ .description").get_by_role("link", name="XLSX").click()
    assert template.value.suggested_filename == "promo-code-template.xlsx"
    screenshot(page, "add-codes", full_page=True)

    # Upload a CSV with bad rows: the manager lands on the import's report, which follows the
    # progress and says when the import ends.
    page.get_by_label("Template file").set_input_files(
        files=[{"name": "welcome.csv", "mimeType": "text/csv", "buffer": BAD_CSV.encode()}]
    )
    page.locator("#upload-form").get_by_role("button", name="Import").click()
    job = Import.objects.get()
    page.wait_for_url(f"**{reverse('admin:imports_import_change', args=[job.pk])}")
    page.get_by_text("Import report").wait_for()
    page.locator(".import-report .import-status-completed_with_errors").wait_for()
    page.locator(".import-ended").wait_for()
    rejected = page.locator("table.rejections tbody tr")
    assert rejected.count() == 4
    assert "“someday” is not a date" in page.locator("table.rejections").inner_text()
    screenshot(page, "import-report", full_page=True)
    with page.expect_download() as rows:
        page.get_by_role("link", name="CSV").click()
    content = Path(rows.value.path()).read_text(encoding="utf-8-sig")
    assert content.splitlines()[0].endswith(",Reason")
    assert "Row 5, Code: The code has a space at position" in content

    # Paste codes; generation is then no longer offered.
    page.goto(f"{url}{reverse('admin:imports_import_add')}?pool={pool.pk}")
    page.locator("#id_paste-text").fill("PASTED-1\nPASTED-2, PASTED-3")
    page.locator("#paste-form").get_by_role("button", name="Import codes").click()
    page.locator(".import-report .import-status-completed").wait_for()
    page.goto(f"{url}{reverse('admin:imports_import_add')}?pool={pool.pk}")
    assert page.get_by_text("no longer offers generation").is_visible()
    assert Code.objects.filter(pool=pool).count() == 5  # 2 valid rows of the file, 3 pasted

    # Usage rules answer while the manager clicks: the exclusive options disable each other
    # with a reason, and the validity period is enabled exactly when needed.
    page.goto(f"{url}{reverse('admin:pools_pool_change', args=[pool.pk])}")
    page.get_by_label("Description").fill("Welcome codes for the newsletter")
    issue_check = page.get_by_label("Redeem only by the customer the code was issued to")
    multiple_use = page.get_by_label("Codes can be used more than once")
    validity = page.get_by_label("Validity period after issue (days)")
    expect(validity).to_be_disabled()
    issue_check.check()
    expect(multiple_use).to_be_disabled()
    expect(page.locator("#multiple-use-reason")).to_contain_text("exclude each other")
    expect(validity).to_be_enabled()
    issue_check.uncheck()
    expect(multiple_use).to_be_enabled()
    expect(validity).to_be_disabled()
    multiple_use.check()
    expect(issue_check).to_be_disabled()
    expect(page.locator("#issue-check-reason")).to_contain_text("exclude each other")
    page.get_by_label("Elsewhere").check()
    expect(page.locator("#processing-effect")).to_contain_text("another system redeems them")
    page.get_by_label("In this system").check()

    # The server still enforces the rule when the page's script is got round: said once.
    page.evaluate(
        """() => { for (const id of ['id_require_issue_before_redeem', 'id_issued_validity_days']) {
            const field = document.getElementById(id); field.disabled = false; }
            document.getElementById('id_require_issue_before_redeem').checked = true;
            document.getElementById('id_issued_validity_days').value = '7'; }"""
    )
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_text("Please correct the error below.").wait_for()
    assert page.locator(".errorlist").count() == 1
    assert "cannot both be on" in page.locator(".errorlist").first.inner_text()

    # Subscribe, then launch with multiple use: the option is locked.
    page.get_by_label("Redeem only by the customer the code was issued to").uncheck()
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_role("button", name="Subscribe me").click()
    page.get_by_text("You will get an e-mail when").wait_for()
    page.get_by_role("button", name="Launch").click()
    # Launch asks first, summing up what locks.
    page.get_by_text("can no longer be changed").wait_for()
    page.get_by_role("button", name="Launch").click()
    page.get_by_text("is launched and active").wait_for()
    assert page.locator("#id_allow_multiple_use").count() == 0
    assert page.locator("#id_slug").count() == 0
    screenshot(page, "pool", full_page=True)
    pool.refresh_from_db()
    assert pool.is_active and pool.allow_multiple_use

    page.goto(f"{url}/admin/pools/campaign/")
    screenshot(page, "campaigns")


def test_admin_screens_fit_narrow_windows_and_work_by_keyboard(
    browser_page, live_server, screenshot
):
    page = browser_page
    make_manager("kai", email="kai@example.com")
    pool = make_pool(description="Narrow screens")
    url = live_server.url

    # By keyboard alone: type the credentials, Enter submits.
    page.goto(f"{url}/admin/")
    page.keyboard.type("kai")
    page.keyboard.press("Tab")
    page.keyboard.type("secret-pass")
    page.keyboard.press("Enter")
    page.get_by_text("Campaigns and promo code pools").wait_for()

    for width in (1280, 800):
        page.set_viewport_size({"width": width, "height": 900})
        for path in (
            reverse("admin:pools_pool_change", args=[pool.pk]),
            f"{reverse('admin:imports_import_add')}?pool={pool.pk}",
            reverse("admin:pools_campaign_changelist"),
        ):
            page.goto(f"{url}{path}")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{path} is {overflow}px too wide at {width}px"
        # Every form field on the pool page has a label.
        page.goto(f"{url}{reverse('admin:pools_pool_change', args=[pool.pk])}")
        unlabelled = page.evaluate(
            """[...document.querySelectorAll(
                '#pool_form input:not([type=hidden]):not([type=submit]), #pool_form select,'
                + ' #pool_form textarea')]
                .filter(e => e.offsetParent !== null)  // shown, not the inlines' blank template
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                .map(e => e.name)"""
        )
        assert unlabelled == []
    screenshot(page, "pool-800px")
