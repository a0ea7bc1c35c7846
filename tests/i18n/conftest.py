"""The Russian catalogue as the tests of tests/i18n read it: the committed .po parsed, the .mo
read as gettext reads it, and the msgids `makemessages` extracts from the product's code today."""

import ast
import gettext
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "locale" / "ru" / "LC_MESSAGES"
# What `make messages` reads: the product's code, not its tests, benchmarks or tools.
SOURCES = ("pools", "imports", "notifications", "promo_project", "templates", "static")
DOMAINS = ("django", "djangojs")
NPLURALS = 4
# Words a Russian page may show as they are: names of formats and protocols, the framework's
# name (Django's own Russian says "Django"), the languages' own names in the chooser.
ALLOWED = {"csv", "xlsx", "json", "http", "https", "html", "utc", "django", "english", "redis"}


@dataclass
class Entry:
    msgid: str
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False

    @property
    def key(self):
        return (self.msgctxt, self.msgid, self.msgid_plural)

    def __str__(self):
        text = repr(self.msgid)
        if self.msgid_plural:
            text += f" / plural {self.msgid_plural!r}"
        if self.msgctxt:
            text = f"[{self.msgctxt}] {text}"
        return text


def _unquote(line: str) -> str:
    body = line.strip()
    assert body.startswith('"') and body.endswith('"'), line
    return ast.literal_eval(body)  # the C escapes of a .po string are Python's too


def parse_po(path: Path) -> list[Entry]:
    """Return the entries of a .po file as gettext's tools write it (entries apart by a blank
    line), the header left out."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry, target = Entry(msgid=None), None
        for raw in block.splitlines():
            line = raw.strip()
            if line.startswith("#~"):
                entry.obsolete, line = True, line[2:].strip()
            if line.startswith("#,"):
                entry.flags |= {flag.strip() for flag in line[2:].split(",")}
                continue
            if not line or line.startswith("#"):
                continue
            if line.startswith('"'):
                if target == "msgstr":
                    entry.msgstr[-1] += _unquote(line)
                else:
                    setattr(entry, target, getattr(entry, target) + _unquote(line))
                continue
            keyword, _, rest = line.partition(" ")
            if keyword.startswith("msgstr"):
                entry.msgstr.append(_unquote(rest))
                target = "msgstr"
            else:
                target = keyword
                setattr(entry, target, _unquote(rest))
        if entry.msgid:  # not the header
            entries.append(entry)
    return entries


def read_mo(path: Path) -> dict:
    """Return what gettext reads from a compiled catalogue: msgid (with its context as
    "context\\x04msgid") -> msgstr, and (msgid, n) -> msgstr[n] for plurals."""
    if not path.exists():
        return {}
    with path.open("rb") as file:
        return dict(gettext.GNUTranslations(file)._catalog)


def need_gettext_tools():
    if shutil.which("xgettext") and shutil.which("msgfmt"):
        return
    if os.environ.get("CI"):
        pytest.fail("GNU gettext (xgettext, msgfmt) is missing: .ci/run installs Debian's gettext")
    pytest.skip("GNU gettext (xgettext, msgfmt) is not installed")


@pytest.fixture(scope="session")
def extracted(tmp_path_factory) -> dict[str, list[Entry]]:
    """Return, per domain, the msgids `makemessages` extracts from the product's code now: run
    into a copy of the sources, so that the committed catalogue is left as it is."""
    need_gettext_tools()
    copy = tmp_path_factory.mktemp("sources")
    for name in SOURCES:
        if (ROOT / name).exists():
            shutil.copytree(
                ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
    shutil.copy(ROOT / "manage.py", copy / "manage.py")
    (copy / "locale").mkdir()
    found = {}
    for domain in DOMAINS:
        subprocess.run(
            [sys.executable, "manage.py", "makemessages", "-l", "ru", "-d", domain]
            + ["--no-location", "--no-obsolete", "--verbosity", "0"],
            cwd=copy,
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(copy)},
        )
        po = copy / "locale" / "ru" / "LC_MESSAGES" / f"{domain}.po"
        found[domain] = parse_po(po) if po.exists() else []
    return found


@pytest.fixture(scope="session")
def committed() -> dict[str, list[Entry]]:
    """Return, per domain, the entries of the committed catalogue."""
    return {
        domain: parse_po(LOCALE / f"{domain}.po") if (LOCALE / f"{domain}.po").exists() else []
        for domain in DOMAINS
    }


PLACEHOLDERS = re.compile(r"%\([^)]*\)[a-z]|%[a-z]|\{[^}]*\}|<[^>]+>")
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z]+")
LATIN_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*[A-Za-z0-9]")


def english_words() -> set[str]:
    """Words of 4 letters or more of the catalogue's English msgids, as a page may write them
    (lower case, capitalised, upper case), less the very tokens its Russian translations show
    as they are (a column "Code", a reason code "withdrawn", a format "XLSX").

    Check a page's word `w` with `w in english_words()`."""
    english, kept = set(), set()
    for entry in parse_po(LOCALE / "django.po"):
        for text in (entry.msgid, entry.msgid_plural or ""):
            english |= {w.lower() for w in LATIN_WORD.findall(PLACEHOLDERS.sub(" ", text))}
        for text in entry.msgstr:
            # Whole tokens: a reason code (pool_paused) or a column (Issue-start) a translation
            # quotes keeps none of its words ("pool", "issue") from the check.
            kept |= set(LATIN_TOKEN.findall(PLACEHOLDERS.sub(" ", text)))
    return {
        form
        for word in english
        if len(word) >= 4 and word not in ALLOWED
        for form in (word, word.capitalize(), word.upper())
        if form not in kept
    }
