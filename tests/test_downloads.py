"""Every file the admin serves, found from its URLs: each escapes formulas in every cell, and
each that holds codes or customers is sent only to staff who may view codes and the pool, on
every request.

The walk finds the downloads in the URL resolver, not in a list kept by hand: a download added
later that this file does not know how to exercise fails test_the_walk_knows_every_download.
"""

import csv
import io
import re
from dataclasses import dataclass, field

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLResolver, get_resolver, reverse
from openpyxl import Workbook, load_workbook

from imports.assignment_services import assignment_start
from imports.assignments import assignment_run
from imports.engine import import_run
from imports.headers import TEMPLATE_COLUMNS
from imports.models import Assignment, Import, Rejection
from imports.services import import_text_start
from pools import export_services
from pools.export_services import code_export_run
from pools.groups import STAFF_APPS
from pools.models import Code, CodeExport
from tests.factories import make_codes, make_pool

pytestmark = pytest.mark.django_db

# What a spreadsheet runs as a formula when a cell starts with it (OWASP's CSV injection list),
# written here again rather than read from pools.exports: the test is the rule's second opinion.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
HOSTILE = ('=HYPERLINK("http://x","y")', "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1")
# A leaf route or URL name that serves a file: a file extension ("export.<str:file_format>",
# "result.csv") or a word that says so.
DOWNLOAD_MARKS = re.compile(r"\.(<|[a-z])|download|export|rejected|result|template|file|report")
# The names Django's admin gives a model's own pages (the Code exports list is no download).
ADMIN_PAGES = re.compile(r"_(changelist|add|change|delete|history)$")


def admin_urls(patterns=None, prefix=""):
    """Yield (route, leaf route, name) of each URL under the admin's namespace."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if patterns is None and pattern.namespace != "admin":
                continue
            yield from admin_urls(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), str(pattern.pattern), pattern.name


def admin_downloads() -> list[str]:
    """Return the names of the admin's URLs that look like downloads."""
    found = set()
    for route, leaf, name in admin_urls():
        named_so = name and DOWNLOAD_MARKS.search(name) and not ADMIN_PAGES.search(name)
        if DOWNLOAD_MARKS.search(leaf) or named_so:
            found.add(name or route)
    return sorted(found)


# The data behind the downloads


@dataclass
class Hostile:
    """A pool whose every file holds the hostile cells, and the jobs whose files hold them."""

    pool: object
    job: Import
    assignment: Assignment
    exports: list = field(default_factory=list)


def hostile_pool():
    # A pool ID may start with "-" (a slug): it is the Pool ID column of every code export.
    pool = make_pool(slug="-hostile-pool", launched=True)
    make_codes(pool, HOSTILE)  # handed out by the assignment below
    for number, customer in enumerate(HOSTILE):
        make_codes(pool, [f"ISSUED{number}"], status=Code.Status.ISSUED, issued_to=customer)
    return pool


def hostile_import(pool) -> Import:
    """An import whose rejected rows hold the hostile cells in each of the template's columns:
    codes pasted twice (the second row of each is rejected as it was read), and rows stored as
    a rejection keeps them (a pasted line is cut at commas and stripped, which the others
    would not survive)."""
    # New to the pool: a code the pool holds is "already in the pool" on each of its rows.
    pasted = ["+1+2", "-1+2", "@SUM(A2)"]
    job = import_text_start(pool=pool, text="\n".join(["GOOD1", *pasted, *pasted]) + "\n")
    import_run(import_id=job.pk)
    assert [rejection.value for rejection in job.rejections.all()] == pasted
    for number, value in enumerate(HOSTILE):
        Rejection.objects.create(
            job=job,
            row_number=100 + number,
            column="Code",
            value=value,
            reason="Hostile.",
            cells=[value] * len(TEMPLATE_COLUMNS),
        )
    Import.objects.filter(pk=job.pk).update(rows_rejected=job.rejections.count())
    job.refresh_from_db()
    return job


def hostile_assignment(pool) -> Assignment:
    """An assignment of a customer list whose ids and other cells are the hostile cells, each
    handed a hostile code. A workbook, whose text cells may hold a CR (a CSV's reader takes a CR
    in a quoted cell for a line break and rejects the row)."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Customer", "Note"])
    for number, value in enumerate(HOSTILE, start=2):
        for column, text in ((1, f"{value}{number}"), (2, value)):
            cell = sheet.cell(row=number, column=column, value=text)
            cell.data_type = "s"  # text as typed, not a formula (openpyxl's guess for "=")
    output = io.BytesIO()
    workbook.save(output)
    upload = SimpleUploadedFile("customers.xlsx", output.getvalue())
    job = assignment_start(pool=pool, file=upload)
    assignment_run(assignment_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.codes_issued) == (Assignment.Status.COMPLETED, len(HOSTILE))
    return job


@pytest.fixture
def hostile(client, monkeypatch):
    pool = hostile_pool()
    data = Hostile(pool=pool, job=hostile_import(pool), assignment=hostile_assignment(pool))
    # Exports written in the background, started as staff start them (past the limit of an
    # export at once), each format of each kind of rows.
    client.force_login(staff_user())
    for file_format in CodeExport.Format.values:
        for url, params in (
            (reverse("admin:pools_code_export", args=[file_format]), {}),
            (reverse("admin:pools_code_export", args=[file_format]), {"pool__id__exact": pool.pk}),
            (reverse("admin:imports_import_rejected", args=[data.job.pk, file_format]), {}),
        ):
            with monkeypatch.context() as patch:
                patch.setattr(export_services, "EXPORT_AT_ONCE_MAX", 0)
                assert client.post(url, params).status_code == 302
            export = CodeExport.objects.latest("id")
            code_export_run(export_id=export.pk)
            export.refresh_from_db()
            assert export.status == CodeExport.Status.COMPLETED, export.message
            data.exports.append(export)
    client.logout()
    return data


# How each download is asked for


@dataclass(frozen=True)
class Ask:
    """One request for a file: the URL, and what it holds."""

    url: str
    params: dict = field(default_factory=dict)
    customer_data: bool = True  # codes or customer ids: the codes' export rule applies
    # A POST past the limit of an export at once starts an export job of the same rows.
    starts_export: bool = False


def code_exports(data: Hostile):
    for file_format in CodeExport.Format.values:
        url = reverse("admin:pools_code_export", args=[file_format])
        yield Ask(url, {"pool__id__exact": data.pool.pk}, starts_export=True)
        yield Ask(url, starts_export=True)  # all pools


def export_files(data: Hostile):
    for export in data.exports:
        yield Ask(reverse("admin:pools_codeexport_download", args=[export.pk]))


def rejected_rows(data: Hostile):
    for file_format in CodeExport.Format.values:
        url = reverse("admin:imports_import_rejected", args=[data.job.pk, file_format])
        yield Ask(url, starts_export=True)


def assignment_results(data: Hostile):
    yield Ask(reverse("admin:imports_assignment_result", args=[data.assignment.pk]))


def import_templates(data: Hostile):
    # The template's columns and an example row: no codes nor customers of any pool.
    for file_format in CodeExport.Format.values:
        yield Ask(reverse("admin:imports_template", args=[file_format]), customer_data=False)


DOWNLOADS = {
    "pools_code_export": code_exports,
    "pools_codeexport_download": export_files,
    "imports_import_rejected": rejected_rows,
    "imports_assignment_result": assignment_results,
    "imports_template": import_templates,
}


def staff_user(lacking: str = ""):
    """A staff user with every permission of the product's apps, except view (and change, which
    implies view) of the model `lacking`."""
    user, _ = get_user_model().objects.get_or_create(username="staff", is_staff=True)
    permissions_set(user, lacking)
    return user


def permissions_set(user, lacking: str = "") -> None:
    granted = Permission.objects.filter(content_type__app_label__in=STAFF_APPS)
    if lacking:
        granted = granted.exclude(codename__in=[f"view_{lacking}", f"change_{lacking}"])
    user.user_permissions.set(granted)


# Reading a file served


def served_cells(response) -> list:
    """Return every cell of the file a response sends (every sheet of a workbook)."""
    body = b"".join(response.streaming_content) if response.streaming else response.content
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment"), disposition
    if response["Content-Type"].startswith("text/csv"):
        # newline="" keeps a "\r" inside a quoted cell as the cell's own.
        reader = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""))
        return [cell for row in reader for cell in row]
    workbook = load_workbook(io.BytesIO(body))
    cells = []
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{sheet.title}!{cell.coordinate} is a formula"
                # XML reads a CR stored in a cell as a line feed (its line-end rule): read
                # back the CR written.
                value = cell.value
                cells.append(value.replace("\n", "\r") if isinstance(value, str) else value)
    return cells


def unescaped(cells) -> list:
    return [cell for cell in cells if isinstance(cell, str) and cell.startswith(FORMULA_TRIGGERS)]


# The walk


def test_the_walk_knows_every_download():
    found = admin_downloads()
    assert found, "the resolver's walk found no download: the marks no longer match"
    unknown = [name for name in found if name not in DOWNLOADS]
    assert not unknown, (
        f"downloads this file does not exercise: {unknown}. Add them to DOWNLOADS, with "
        "hostile data behind them, so that their formulas and permissions are checked."
    )
    assert sorted(DOWNLOADS) == found, "DOWNLOADS names a URL the admin no longer has"


def test_no_admin_action_serves_a_file():
    """An action answers the list's POST at no URL of its own, so the walk would miss a file it
    sent: none is named as a download. Files are served at URLs of their own (an action may
    redirect to one)."""
    names = [name for name, _ in admin.site.actions]
    for model_admin in admin.site._registry.values():
        names += [getattr(action, "__name__", action) for action in model_admin.actions or ()]
    assert not [name for name in names if DOWNLOAD_MARKS.search(name)]


@pytest.mark.parametrize("name", admin_downloads())
def test_every_cell_of_every_download_is_safe_from_formulas(client, hostile, name):
    client.force_login(staff_user())
    for ask in DOWNLOADS[name](hostile):
        response = client.get(ask.url, ask.params)
        assert response.status_code == 200, (ask, response.content[:300])
        cells = served_cells(response)
        assert not unescaped(cells), (ask, unescaped(cells))
        if ask.customer_data:
            # Every hostile cell is there, shown as text: the file was not emptied to pass.
            escaped = {cell[1:] for cell in cells if isinstance(cell, str) and cell[:1] == "'"}
            assert set(HOSTILE) <= escaped, (ask, cells)


@pytest.mark.parametrize("name", admin_downloads())
def test_every_download_of_codes_or_customers_needs_view_of_codes_and_pools_on_every_request(
    client, hostile, monkeypatch, name
):
    user = staff_user()
    client.force_login(user)
    for ask in DOWNLOADS[name](hostile):
        for lacking in ("code", "pool"):
            permissions_set(user)
            response = client.get(ask.url, ask.params)
            assert response.status_code == 200, ask
            # Nor does a browser or a proxy answer the next request from its cache.
            assert {"no-store", "private"} <= set(re.split(r",\s*", response["Cache-Control"]))
            # The same session, the next request: the permission is read again.
            permissions_set(user, lacking)
            expected = 403 if ask.customer_data else 200
            assert client.get(ask.url, ask.params).status_code == expected, (ask, lacking)
            if ask.starts_export:
                exports = CodeExport.objects.count()
                with monkeypatch.context() as patch:
                    patch.setattr(export_services, "EXPORT_AT_ONCE_MAX", 0)
                    assert client.post(ask.url, ask.params).status_code == 403, (ask, lacking)
                assert CodeExport.objects.count() == exports
