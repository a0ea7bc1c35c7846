"""No English left on a Russian admin: with data in every model, a crawl in Russian from the
admin's home page over every list, add and change page and the pages their links reach, failing
on any word of the product's English strings in what the page shows.

The words come from the English msgids of locale/ru/LC_MESSAGES/django.po (4 letters or more),
so a string wrapped for translation but left untranslated, or an English string beside wrapped
ones, is caught; data the manager typed (names, codes, customers) is left out of the reading.
"""

import re
from collections import deque
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from imports.assignment_services import assignment_start
from imports.engine import import_run
from imports.models import Import
from imports.services import import_text_start, import_undo
from notifications.languages import remember_language
from notifications.models import LowStockAlert
from notifications.services import subscription_add
from pools.code_services import code_issue, code_redeem, codes_withdraw
from pools.export_services import code_export_filters, code_export_start
from pools.services import pool_launch
from tests.factories import make_api_key, make_campaign, make_pool

from .conftest import LATIN_WORD, english_words

pytestmark = pytest.mark.django_db

# The most pages a crawl reads: far more than the admin has, so that a runaway crawl stops.
MAX_PAGES = 400
# Not followed: signing out, deleting, and Django's own forms of users and groups (their
# permission names are rows of its database, in English, and Django's Russian has gaps).
NOT_FOLLOWED = re.compile(r"/logout/|/delete/|^/admin/auth/(user|group)/.+")
# Shown but not read: code, the text a manager typed, and scripts.
UNREAD_TAGS = {"script", "style", "code", "pre", "textarea", "noscript"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}
VOID_TAGS |= {"source", "track", "param"}
# An identifier the product makes up (a new pool's suggested ID "pool-3", its parameter POOL_3).
GENERATED_ID = re.compile(r"\b[A-Za-z]+[-_]\d+\b")


class ShownText(HTMLParser):
    """The text a page shows, with the attributes a reader sees (button values, placeholders,
    titles, image descriptions); links found on the way."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts, self.links, self.unread = [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        unread = tag in UNREAD_TAGS or (
            # Django's permission names are rows of its database, in English.
            tag == "select" and "permissions" in (attrs.get("name") or "")
        )
        if tag not in VOID_TAGS and (unread or self.unread):
            self.unread += 1
            return
        if self.unread:
            return
        if tag == "input" and attrs.get("type") in ("submit", "button", "reset"):
            self.texts.append(attrs.get("value") or "")
        for name in ("placeholder", "title", "alt", "aria-label"):
            if attrs.get(name):
                self.texts.append(attrs[name])

    def handle_endtag(self, tag):
        if self.unread and tag not in VOID_TAGS:
            self.unread -= 1

    def handle_data(self, data):
        if not self.unread and data.strip():
            self.texts.append(data)


def everything(staff):
    """Data in every model the admin shows, with names in Russian or of no language, and
    return the values typed in (left out of the reading)."""
    campaign = make_campaign("Весенняя распродажа")
    pool = make_pool(
        campaign,
        description="Приветственные коды",
        slug="vesna",
        notify_below_enabled=True,
        notify_below=5,
    )
    codes = [f"VESNA-{n}" for n in range(1, 13)]
    job = import_text_start(pool=pool, text="\n".join([*codes, "BAD CODE", "VESNA-1"]), user=staff)
    import_run(import_id=job.pk)
    pool_launch(pool=pool)
    code_issue(pool=pool, customer="k-001")
    issued = code_issue(pool=pool, customer="k-002")
    code_redeem(code=issued.code, customer="k-002", pool=pool)
    codes_withdraw(pool=pool, codes=["VESNA-12"], user=staff, reason="Утечка")
    undone = import_text_start(pool=pool, text="VESNA-20\nVESNA-21", user=staff)
    import_run(import_id=undone.pk)
    import_undo(job=Import.objects.get(pk=undone.pk), user=staff)
    assignment_start(
        pool=pool,
        file=SimpleUploadedFile("klienty.csv", b"Customer\nk-003\nk-004\n"),
        user=staff,
    )
    code_export_start(filters=code_export_filters(pool=pool.pk), file_format="csv", user=staff)
    subscription_add(user=staff, pool=pool)
    subscription_add(user=staff, campaign=campaign)
    LowStockAlert.objects.create(pool=pool, crossing=1, stock=4, threshold=5)
    make_pool(campaign, description="Черновик", slug="chernovik")
    make_api_key("crm-vesna")
    return [
        campaign.name,
        pool.description,
        pool.slug,
        pool.template_parameter,
        "chernovik",
        *codes,
        "BAD CODE",
        "VESNA-20",
        "VESNA-21",
        "crm-vesna",
        "klienty.csv",
        staff.username,
        staff.email,
        "<unknown>",  # the user agent django-axes records for the test client's sign-in
    ]


def crawl(client, start: str):
    """Yield (url, html) of every admin page reachable by links from `start`."""
    seen, queue, read = {start}, deque([start]), 0
    while queue and read < MAX_PAGES:
        url = queue.popleft()
        response = client.get(url, HTTP_ACCEPT_LANGUAGE="ru")
        read += 1
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        page = response.content.decode()
        yield url, page
        parser = ShownText()
        parser.feed(page)
        for href in parser.links:
            target = urlsplit(urljoin(url, href))
            if target.netloc or not target.path.startswith("/admin/"):
                continue
            if NOT_FOLLOWED.search(target.path):
                continue
            # A list's sorting, filters and pages show the same words: the list once.
            query = "" if _is_list(target.path) else target.query
            link = target.path + (f"?{query}" if query else "")
            if link not in seen:
                seen.add(link)
                queue.append(link)


def _is_list(path: str) -> bool:
    parts = [p for p in path.split("/") if p]
    return len(parts) == 3 and parts[0] == "admin"  # /admin/<app>/<model>/


def untranslated(page: str, words: set[str], data: list[str]) -> list[str]:
    """Return the shown texts of a page that hold an English word of the product."""
    parser = ShownText()
    parser.feed(page)
    found = []
    for text in parser.texts:
        for value in data:
            text = text.replace(value, " ")
        text = GENERATED_ID.sub(" ", text)
        english = [w for w in LATIN_WORD.findall(text) if w in words]
        if english:
            found.append(f"{' '.join(text.split())[:160]!r} ({', '.join(english)})")
    return list(dict.fromkeys(found))


def test_no_english_on_the_russian_admin(client):
    staff = get_user_model().objects.create_superuser("olga", "olga@example.com", "secret-pass")
    remember_language(staff, "ru")
    data = sorted(everything(staff), key=len, reverse=True)
    client.force_login(staff)
    words = english_words()

    pages, shown_on, example = [], {}, {}
    for url, page in crawl(client, reverse("admin:index")):
        pages.append(url)
        assert '<html lang="ru"' in page, f"{url} is not in Russian"
        for text in untranslated(page, words, data):
            # One line for the texts that differ by their numbers only (a chart's days).
            key = re.sub(r"\d+", "#", text)
            example.setdefault(key, text)
            if url not in shown_on.setdefault(key, []):
                shown_on[key].append(url)
    assert len(pages) > 20, f"the crawl read only {len(pages)} pages"
    report = [
        f"  {example[key]} on {len(urls)} page(s), first {urls[0]}"
        for key, urls in shown_on.items()
    ]
    assert not report, (
        f"{len(report)} English texts on "
        f"{len({u for urls in shown_on.values() for u in urls})} of the {len(pages)} Russian "
        "admin pages read:\n" + "\n".join(report)
    )
