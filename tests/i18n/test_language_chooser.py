"""The admin's language chooser: English / Русский in the header, remembered for the next pages
and for the e-mails written to the one who chose."""

import re

import pytest
from django.urls import reverse

from notifications.languages import language_of

pytestmark = pytest.mark.django_db


def chooser(page: str) -> str:
    match = re.search(r'<form id="language-form".*?</form>', page, re.S)
    assert match, "no language chooser on the page"
    return match.group(0)


def test_choosing_russian_switches_the_admin_and_is_remembered(manager_client, manager):
    page = manager_client.get(reverse("admin:index")).content.decode()
    form = chooser(page)
    assert f'action="{reverse("set_language")}"' in form
    assert re.search(r'value="en"[^>]*aria-current="true" disabled>English</button>', form)
    assert re.search(r'value="ru" lang="ru">Русский</button>', form)
    assert "Campaigns and promo code pools" in page

    chosen = manager_client.post(
        reverse("set_language"), {"language": "ru", "next": reverse("admin:index")}, follow=True
    )

    page = chosen.content.decode()
    assert chosen.redirect_chain == [(reverse("admin:index"), 302)]
    assert '<html lang="ru"' in page
    assert "Кампании и пулы промокодов" in page
    assert "Выйти" in page  # Django's own "Log out"
    assert re.search(r'value="ru" lang="ru" aria-current="true" disabled>Русский</button>', page)
    # Remembered: the next page, whatever the browser asks for, and the e-mails.
    again = manager_client.get(reverse("admin:pools_pool_changelist"), HTTP_ACCEPT_LANGUAGE="en")
    assert again.headers["Content-Language"] == "ru"
    assert language_of(manager) == "ru"


def test_the_chooser_brings_the_manager_back_to_the_page_they_were_on(manager_client):
    page = manager_client.get(reverse("admin:pools_campaign_changelist")).content.decode()
    form = chooser(page)
    assert f'name="next" value="{reverse("admin:pools_campaign_changelist")}"' in form
