"""Static files come from the web process itself, compressed and cached for good in production."""

import re

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

PRODUCTION_STATIC = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


def test_production_pages_link_hashed_files_served_compressed_and_cached(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = PRODUCTION_STATIC
    call_command("collectstatic", "--noinput", verbosity=0)
    browser = Client()

    page = browser.get("/admin/login/").content.decode()
    stylesheets = re.findall(r'href="(/static/[^"]+\.css)"', page)
    assert stylesheets
    # A content hash in every name: a changed file is a new URL, so old copies can be kept forever.
    assert all(re.search(r"\.[0-9a-f]{12}\.css$", name) for name in stylesheets), stylesheets

    answer = browser.get(stylesheets[0], HTTP_ACCEPT_ENCODING="gzip, br")
    assert answer.status_code == 200
    assert answer["Content-Encoding"] in {"br", "gzip"}
    assert "immutable" in answer["Cache-Control"]


def test_the_zero_setup_default_serves_static_files_without_collecting_them(settings):
    settings.DEBUG = True

    answer = Client().get("/static/pools/admin.css")

    assert answer.status_code == 200
    assert b"".join(answer.streaming_content)
