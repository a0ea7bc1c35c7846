"""The Russian catalogue is complete and compiled: every string the product's code marks for
translation has a Russian translation (all plural forms) that is used, not fuzzy, either in
locale/ru or in Django's own catalogue, and the committed .mo is the .po compiled."""

import subprocess

from django.utils import translation

from .conftest import LOCALE, NPLURALS, need_gettext_tools, parse_po, read_mo


def translated_by_us(entry, catalogue: dict) -> bool:
    key = f"{entry.msgctxt}\x04{entry.msgid}" if entry.msgctxt else entry.msgid
    if entry.msgid_plural:
        return all(catalogue.get((key, n)) for n in range(NPLURALS))
    return bool(catalogue.get(key))


def translated_by_django(entry) -> bool:
    """Django's and the installed apps' own catalogues (the admin's "Search", say)."""
    with translation.override("ru"):
        if not entry.msgid_plural:
            if entry.msgctxt:
                return translation.pgettext(entry.msgctxt, entry.msgid) != entry.msgid
            return translation.gettext(entry.msgid) != entry.msgid
        for n in (1, 2, 5):  # Russian's one, few and many
            english = entry.msgid if n == 1 else entry.msgid_plural
            if entry.msgctxt:
                text = translation.npgettext(entry.msgctxt, entry.msgid, entry.msgid_plural, n)
            else:
                text = translation.ngettext(entry.msgid, entry.msgid_plural, n)
            if text == english:
                return False
        return True


def listed(entries) -> str:
    return "\n".join(f"  {entry}" for entry in entries)


def test_every_string_of_the_product_has_a_russian_translation(extracted):
    missing = {}
    for domain, entries in extracted.items():
        ours = read_mo(LOCALE / f"{domain}.mo")
        missing[domain] = [
            entry
            for entry in entries
            if not translated_by_us(entry, ours) and not translated_by_django(entry)
        ]
    report = "".join(
        f"\n{len(entries)} msgids of {domain} have no Russian translation in "
        f"locale/ru/LC_MESSAGES/{domain}.po (run `make messages`, fill them, run it again):\n"
        f"{listed(entries)}"
        for domain, entries in missing.items()
        if entries
    )
    assert not report, report


def test_no_translation_is_left_fuzzy(committed):
    fuzzy = {
        domain: [e for e in entries if "fuzzy" in e.flags and not e.obsolete]
        for domain, entries in committed.items()
    }
    report = "".join(
        f"\n{len(entries)} fuzzy entries in {domain}.po (check each, then drop the flag):\n"
        f"{listed(entries)}"
        for domain, entries in fuzzy.items()
        if entries
    )
    assert not report, report


def test_every_plural_has_all_its_russian_forms(committed):
    wrong = [
        entry
        for entries in committed.values()
        for entry in entries
        if entry.msgid_plural
        and any(entry.msgstr)
        and (len(entry.msgstr) != NPLURALS or not all(entry.msgstr))
    ]
    assert not wrong, f"plurals without their {NPLURALS} Russian forms:\n{listed(wrong)}"


def test_the_committed_mo_is_the_po_compiled(committed, tmp_path):
    need_gettext_tools()
    for domain in committed:
        po = LOCALE / f"{domain}.po"
        if not po.exists():
            continue
        compiled = tmp_path / f"{domain}.mo"
        subprocess.run(["msgfmt", "--check-format", "-o", compiled, po], check=True)
        assert read_mo(LOCALE / f"{domain}.mo") == read_mo(compiled), (
            f"locale/ru/LC_MESSAGES/{domain}.mo is not {domain}.po compiled: run `make messages`"
        )


def test_the_parser_reads_the_catalogue_as_msgfmt_does(committed, tmp_path):
    """The tests above read the .po with their own parser: it must agree with gettext's."""
    need_gettext_tools()
    po = LOCALE / "django.po"
    compiled = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "-o", compiled, po], check=True)
    catalogue = read_mo(compiled)
    for entry in parse_po(po):
        if entry.obsolete or "fuzzy" in entry.flags or not all(entry.msgstr):
            continue
        key = f"{entry.msgctxt}\x04{entry.msgid}" if entry.msgctxt else entry.msgid
        if entry.msgid_plural:
            assert [catalogue[(key, n)] for n in range(len(entry.msgstr))] == entry.msgstr
        else:
            assert catalogue[key] == entry.msgstr[0]
