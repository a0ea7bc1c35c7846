"""Every admin page with a file upload, found by walking the admin site: a file over the limit
gets a form error naming the file and the limit, and a workbook that unpacks to more than the
request may parse is not parsed in the request. A new upload page is walked too."""

import html
import io
import re

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import NoReverseMatch, reverse

from imports.services import import_text_start
from pools.code_services import codes_withdraw
from tests.factories import make_codes, make_pool
from tests.imports.files import bomb_workbook

pytestmark = pytest.mark.django_db

# The upload pages there are today: the walk must find at least these.
KNOWN = {"imports_import_add", "imports_assignment_add", "pools_pool_withdraw"}

_FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S)
_INPUT = re.compile(r"<input\b[^>]*>")
_ATTRIBUTE = re.compile(r'(\w[\w-]*)="([^"]*)"')


def upload_pages(client, objects) -> list[tuple[str, str, list[tuple[dict, list[str]]]]]:
    """Walk every URL of every registered ModelAdmin (an object's with an object of its model,
    the add pages with ?pool=) and return (url name, url, [(the form's other fields, its file
    fields)]) for each page that shows a file input."""
    found = []
    pool = objects["pool"]
    for model, model_admin in admin.site._registry.items():
        instance = objects.get(model) or model._default_manager.first()
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None)
            converters = set(pattern.pattern.converters)
            if not name or not converters <= {"object_id"}:
                continue
            if converters and instance is None:
                continue
            try:
                url = reverse(f"admin:{name}", args=[instance.pk] if converters else [])
            except NoReverseMatch:
                continue
            url = f"{url}?pool={pool.pk}"
            response = client.get(url)
            if response.status_code != 200 or not hasattr(response, "content"):
                continue
            forms = []
            for form in _FORM.findall(response.content.decode()):
                inputs = [dict(_ATTRIBUTE.findall(tag)) for tag in _INPUT.findall(form)]
                files = [i["name"] for i in inputs if i.get("type") == "file"]
                if not files:
                    continue
                fields = {
                    i["name"]: html.unescape(i.get("value", ""))
                    for i in inputs
                    if i.get("type") in ("hidden", "submit") and i.get("name")
                }
                fields.pop("csrfmiddlewaretoken", None)
                forms.append((fields, files))
            if forms:
                found.append((name, url, forms))
    return found


@pytest.fixture
def superuser_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    client.force_login(user)
    return client


@pytest.fixture
def objects():
    pool = make_pool(launched=True)
    make_codes(pool, ["A1B2C3", "KEEP"])
    import_text_start(pool=pool, text="TEXT1\nTEXT2")
    codes_withdraw(pool=pool, codes=["KEEP"])
    return {"pool": pool, type(pool): pool}


def test_every_upload_form_refuses_a_file_over_the_limit_with_its_name_and_the_limit(
    superuser_client, objects, settings
):
    settings.IMPORT_MAX_FILE_SIZE = 1000
    pages = upload_pages(superuser_client, objects)
    assert {name for name, _, _ in pages} >= KNOWN

    for name, url, forms in pages:
        for fields, files in forms:
            for field in files:
                big = io.BytesIO(b"Code,Customer\n" + b"A1B2C3,1\n" * 226)  # 2,048 bytes
                big.name = "big.csv"
                response = superuser_client.post(url, {**fields, field: big})

                assert response.status_code == 200, (name, field)
                assert (
                    "“big.csv” is 2.0\xa0KB; files up to 1000\xa0bytes can be uploaded."
                    in response.content.decode()
                ), (name, field)


def test_no_upload_form_parses_a_workbook_that_unpacks_beyond_the_look_limit(
    superuser_client, objects, settings, monkeypatch
):
    settings.IMPORT_SNIFF_MAX_UNPACKED = 64 * 1024
    data = bomb_workbook(1024 * 1024)
    assert len(data) < settings.IMPORT_SNIFF_MAX_WORKBOOK  # small: only its unpacked size tells
    pages = upload_pages(superuser_client, objects)
    parsed = []

    class Refused:
        @staticmethod
        def from_filelike(file):
            parsed.append(file)
            raise AssertionError("a workbook was parsed in the request")

    import python_calamine

    # The jobs these uploads queue start after commit, which a test's transaction never does:
    # whatever parses here, parses in the request.
    monkeypatch.setattr(python_calamine, "CalamineWorkbook", Refused)

    for name, url, forms in pages:
        for fields, files in forms:
            for field in files:
                upload = io.BytesIO(data)
                upload.name = "customers.xlsx"
                response = superuser_client.post(url, {**fields, field: upload}, follow=True)

                assert response.status_code == 200, (name, field)
                assert parsed == [], name
