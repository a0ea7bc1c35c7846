"""Admin login cannot be guessed at full speed: attempts are limited per account and per
address (django-axes)."""

import pytest
from django.urls import reverse

from tests.factories import make_manager

pytestmark = pytest.mark.django_db

LOGIN = reverse("admin:login")


def attempt(client, username, password, address="203.0.113.7"):
    return client.post(
        LOGIN,
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


def test_an_account_is_locked_after_the_failure_limit_from_any_address(client, settings):
    make_manager("mia")
    limit = settings.AXES_FAILURE_LIMIT

    answers = [attempt(client, "mia", f"guess-{i}", f"198.51.100.{i}") for i in range(limit)]
    right_password = attempt(client, "mia", "secret-pass", "192.0.2.1")

    assert all(a.status_code == 200 for a in answers[:-1])  # the form again, with its error
    assert answers[-1].status_code == 429
    assert right_password.status_code == 429
    assert b"Too many failed logins" in right_password.content
    assert "_auth_user_id" not in client.session
    # Other accounts from other addresses are not affected.
    make_manager("noa")
    assert attempt(client, "noa", "secret-pass", "192.0.2.2").status_code == 302


def test_an_address_is_locked_after_the_failure_limit_on_any_accounts(client, settings):
    make_manager("mia")
    limit = settings.AXES_FAILURE_LIMIT

    for i in range(limit):
        attempt(client, f"user-{i}", "guess", "203.0.113.9")

    assert attempt(client, "mia", "secret-pass", "203.0.113.9").status_code == 429
    assert attempt(client, "mia", "secret-pass", "203.0.113.10").status_code == 302


def test_a_successful_login_below_the_limit_works(client, settings):
    make_manager("mia")

    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "mia", f"guess-{i}")

    assert attempt(client, "mia", "secret-pass").status_code == 302
