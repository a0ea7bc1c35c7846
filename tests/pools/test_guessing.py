"""The guessing budget's odds (pools/guessing.py), as docs/http-api.md and the generation
screen state them."""

import pytest
from django.urls import reverse
from django.utils import translation

from pools.guessing import guessing_budget_text, guessing_odds, guessing_odds_text
from tests.factories import make_codes, make_pool

ISSUE_POOL = {"space": 31**4, "codes": 100}  # 100 four-character codes of 31 characters


def test_a_key_finds_its_budget_times_the_odds_of_a_hit(settings):
    settings.API_FAILED_CHECKS_PER_KEY, settings.API_FAILED_CHECKS_PER_POOL = 500, 1000

    odds = guessing_odds(**ISSUE_POOL)

    fill = 100 / 31**4
    assert odds.fill == pytest.approx(fill)
    assert odds.found_per_key == pytest.approx(500 * fill / (1 - fill))
    assert odds.found_per_pool == pytest.approx(2 * odds.found_per_key)
    assert odds.share_per_key == pytest.approx(odds.found_per_key / 100)
    # The figures of docs/http-api.md.
    assert round(odds.found_per_key, 3) == 0.054
    assert round(guessing_odds(space=10**6, codes=10**4).found_per_key, 2) == 5.05


def test_the_odds_in_words(settings):
    settings.API_FAILED_CHECKS_PER_KEY, settings.API_FAILED_CHECKS_PER_POOL = 500, 1000

    assert "500 for each API key, 1,000 for all keys together" in guessing_budget_text()
    text = guessing_odds_text(**ISSUE_POOL)
    assert "One key guessing finds one code every 18 hours" in text
    assert "all keys together one code every 9 hours" in text
    assert "about 5 codes an hour" in guessing_odds_text(space=10**6, codes=10**4)


def test_the_odds_read_as_people_say_them(settings):
    """A chance of a hit is "once in 9,200 tries", never "1.1e-04%"; a count meets its noun
    in the singular when it is one."""
    settings.API_FAILED_CHECKS_PER_KEY, settings.API_FAILED_CHECKS_PER_POOL = 500, 1000

    assert guessing_odds_text(**ISSUE_POOL) == (
        "100 of 923,521 possible codes exist, so a random guess hits once in 9,200 tries. One "
        "key guessing finds one code every 18 hours, all keys together one code every 9 hours; "
        "in an hour one key uncovers one in 1,800 of the pool's codes."
    )
    # Eight characters of 31, a thousand codes: a few in a billion.
    sparse = guessing_odds_text(space=31**8, codes=1000)
    assert "a random guess hits once in 850 million tries" in sparse
    assert "one key uncovers less than one in a billion of the pool's codes" in sparse
    assert "e-" not in sparse
    one = guessing_odds_text(space=31**12, codes=1)
    assert one.startswith("1 of 787,662,783,788,549,761 possible codes exists")
    assert "less than once in a billion tries" in one
    assert "less than one code in a thousand years" in one
    assert "e-" not in one and "e+" not in one


@pytest.mark.django_db
def test_the_generation_screen_shows_the_odds(manager_client):
    pool = make_pool()
    make_codes(pool, ["A1", "A2"])

    page = manager_client.get(f"{reverse('admin:imports_import_add')}?pool={pool.pk}")

    content = page.content.decode()
    assert guessing_budget_text() in content
    assert "Now, with the default length and alphabet: 2 of " in content
    assert "Filled to generation&#x27;s limit: " in content


def test_the_odds_read_as_people_say_them_in_russian(settings):
    settings.API_FAILED_CHECKS_PER_KEY, settings.API_FAILED_CHECKS_PER_POOL = 500, 1000

    with translation.override("ru"):
        sparse = guessing_odds_text(space=31**8, codes=1000)
        budget = guessing_budget_text()

    assert sparse.startswith("Существует 1\xa0000 кодов из 852\xa0891\xa0037\xa0441 возможных")
    assert "случайная догадка попадает один раз на 850 миллионов попыток" in sparse
    assert "один ключ найдёт один код раз в 195 лет" in sparse
    assert "за час один ключ раскроет меньше одного из миллиарда кодов пула" in sparse
    assert "500 на каждый ключ API и 1\xa0000 на все ключи вместе" in budget
