"""Production switches from the environment: HTTPS redirect, HSTS, the proxy's
HTTPS header, a Content-Security-Policy; `manage.py check --deploy` clean with them set."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "x7#kq2!vLz9@pR4$wN8^bT1&cY6*hJ3(mF5)dS0_gA-eU+iO=lK~",
    "DJANGO_ALLOWED_HOSTS": "promo.example.com",
    # Not connected to by `check`; named so that the zero-setup defaults are not in play.
    "DATABASE_URL": "postgres://promo@db.example.com:5432/promo",
    "CELERY_BROKER_URL": "redis://redis.example.com:6379/0",
    "DJANGO_SECURE_SSL_REDIRECT": "1",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "DJANGO_SECURE_HSTS_PRELOAD": "1",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto: https",
}


def run(args, extra_env):
    env = {**os.environ, **extra_env}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_with_the_production_environment():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_without_them():
    bare = {**PRODUCTION, "DJANGO_SECURE_SSL_REDIRECT": "", "DJANGO_SECURE_HSTS_SECONDS": ""}

    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], bare)

    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


def test_the_switches_come_from_the_environment():
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, s.SECURE_PROXY_SSL_HEADER]))"
    )

    result = run(["-c", script], {**PRODUCTION, "DJANGO_SETTINGS_MODULE": "promo_project.settings"})

    assert json.loads(result.stdout) == [
        True,
        31536000,
        True,
        True,
        ["HTTP_X_FORWARDED_PROTO", "https"],
    ]


@pytest.mark.django_db
def test_admin_pages_carry_the_content_security_policy(client):
    policy = client.get("/admin/login/")["Content-Security-Policy"]

    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
