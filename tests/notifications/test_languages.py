"""A staff member's language is remembered from the admin, for what a worker writes to them."""

import pytest
from django.conf import settings
from django.urls import reverse

from notifications.languages import language_of

pytestmark = pytest.mark.django_db


def test_the_browsers_language_is_remembered_on_signing_in(client, manager):
    assert language_of(manager) == settings.LANGUAGE_CODE

    client.post(
        reverse("admin:login"),
        {"username": manager.username, "password": "secret-pass"},
        HTTP_ACCEPT_LANGUAGE="ru-RU,ru;q=0.9",
    )
    page = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="ru-RU,ru;q=0.9")

    assert page.headers["Content-Language"] == "ru"
    assert language_of(manager) == "ru"


def test_the_language_chooser_wins_over_the_browser(manager_client, manager):
    manager_client.post(reverse("set_language"), {"language": "ru", "next": "/admin/"})
    assert language_of(manager) == "ru"

    manager_client.post(reverse("set_language"), {"language": "en", "next": "/admin/"})
    page = manager_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="ru")

    assert page.headers["Content-Language"] == "en"
    assert language_of(manager) == "en"


def test_someone_who_never_signed_in_gets_the_default(manager):
    assert language_of(manager) == settings.LANGUAGE_CODE
    assert language_of(None) == settings.LANGUAGE_CODE
