"""An import's report in Russian, in a real browser: the live progress writes its counts as the
page does (1 234, not 1,234)."""

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from imports.models import Import
from tests.factories import make_manager, make_pool

pytestmark = [pytest.mark.e2e]


def test_live_progress_writes_counts_in_the_pages_language(browser_page, live_server):
    page = browser_page
    url = live_server.url
    make_manager("lea", email="lea@example.com")
    # A running import no worker takes: the test moves it on by hand.
    job = Import.objects.create(
        pool=make_pool(description="Spring codes"),
        source=Import.Source.TEXT,
        status=Import.Status.RUNNING,
        file_name="Pasted list",
        progress_total=100,
        started_at=timezone.now(),
    )

    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "ru", "url": url}])
    page.goto(f"{url}/admin/")
    page.locator("#id_username").fill("lea")
    page.locator("#id_password").fill("secret-pass")
    page.locator("input[type=submit]").click()
    page.goto(f"{url}{reverse('admin:imports_import_change', args=[job.pk])}")
    page.get_by_text("Отчёт об импорте").wait_for()

    Import.objects.filter(pk=job.pk).update(progress_done=50, codes_added=12345)

    cell = page.locator(".import-report [data-field=codes_added]")
    page.wait_for_function("cell => cell.textContent.includes('12')", arg=cell.element_handle())
    assert cell.inner_text().replace("\xa0", " ").replace("\u202f", " ") == "12 345"
    assert page.locator(".import-report [data-field=percent]").inner_text() == "50%"
