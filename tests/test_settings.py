"""Settings read from the environment refuse a value they cannot parse, naming the variable.

Each case loads the settings in a fresh process, as a server or a worker would at start.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Variables these tests set, dropped from the inherited environment so that defaults are known.
TESTED = (
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
    "DJANGO_SECURE_COOKIES",
    "EMAIL_USE_TLS",
    "EMAIL_PORT",
    "IMPORT_BATCH_SIZE",
    "CELERY_BROKER_URL",
    "CELERY_VISIBILITY_TIMEOUT",
)
PRODUCTION = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "test"}


def load_settings(env: dict, *names: str) -> subprocess.CompletedProcess:
    """Set up Django in a new process with these variables; print the named settings as JSON."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {names!r}}}))"
    )
    inherited = {key: value for key, value in os.environ.items() if key not in TESTED}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**inherited, "DJANGO_SETTINGS_MODULE": "promo_project.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value", "extra"),
    [
        ("DJANGO_SECURE_COOKIES", "ture", PRODUCTION),
        ("DJANGO_DEBUG", "maybe", {}),
        ("EMAIL_USE_TLS", "yes please", {}),
    ],
)
def test_a_boolean_that_cannot_be_read_is_refused(name, value, extra):
    result = load_settings({**extra, name: value})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{name}='{value}' is not a boolean" in result.stderr
    assert "use one of 1, true, yes, on or 0, false, no, off" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "extra"),
    [
        ("IMPORT_BATCH_SIZE", "20k", {}),
        ("EMAIL_PORT", "smtp", {}),
        ("CELERY_VISIBILITY_TIMEOUT", "6h", {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}),
    ],
)
def test_an_integer_that_cannot_be_read_is_refused(name, value, extra):
    result = load_settings({**extra, name: value})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{name}='{value}' is not a whole number" in result.stderr


def test_good_values_are_read():
    result = load_settings(
        {
            **PRODUCTION,
            "DJANGO_SECURE_COOKIES": "Off",
            "EMAIL_USE_TLS": " YES ",
            "EMAIL_PORT": "587",
            "IMPORT_BATCH_SIZE": " 500 ",
        },
        "DEBUG",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "EMAIL_USE_TLS",
        "EMAIL_PORT",
        "IMPORT_BATCH_SIZE",
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "EMAIL_USE_TLS": True,
        "EMAIL_PORT": 587,
        "IMPORT_BATCH_SIZE": 500,
    }


def test_empty_values_keep_the_defaults():
    result = load_settings(
        {"DJANGO_DEBUG": "", "EMAIL_USE_TLS": "", "IMPORT_BATCH_SIZE": ""},
        "DEBUG",
        "EMAIL_USE_TLS",
        "IMPORT_BATCH_SIZE",
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DEBUG": True,
        "EMAIL_USE_TLS": False,
        "IMPORT_BATCH_SIZE": 20000,
    }
