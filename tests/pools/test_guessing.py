"""The guessing budget's odds (pools/guessing.py), as docs/http-api.md and the generation
screen state them."""

import pytest
from django.urls import reverse

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

    assert "500 times an hour" in guessing_budget_text()
    text = guessing_odds_text(**ISSUE_POOL)
    assert "one key guessing finds one code every 18 hours" in text
    assert "all keys together one code every 9 hours" in text
    assert "about 5 codes an hour" in guessing_odds_text(space=10**6, codes=10**4)


@pytest.mark.django_db
def test_the_generation_screen_shows_the_odds(manager_client):
    pool = make_pool()
    make_codes(pool, ["A1", "A2"])

    page = manager_client.get(f"{reverse('admin:imports_import_add')}?pool={pool.pk}")

    content = page.content.decode()
    assert guessing_budget_text() in content
    assert "this pool now has 2 codes out of" in content
    assert "Filled to generation&#x27;s limit it would have" in content
