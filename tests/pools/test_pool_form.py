"""The pool form offers only what saving accepts, and marks the names it filled in itself."""

import re

import pytest

from pools.services import pool_end
from tests.factories import change_url, make_campaign, make_pool

pytestmark = pytest.mark.django_db


def options(page: str, name: str) -> list[str]:
    select = re.search(rf'<select name="{name}".*?</select>', page, re.S).group(0)
    return [label for value, label in re.findall(r'<option value="(\d+)"[^>]*>([^<]*)<', select)]


def test_the_fallback_list_offers_neither_the_pool_itself_nor_ended_pools(manager_client):
    campaign = make_campaign()
    pool = make_pool(campaign, slug="main")
    make_pool(campaign, slug="spare", launched=True)
    make_pool(campaign, slug="draft-spare")
    pool_end(pool=make_pool(campaign, slug="over", launched=True))
    make_pool(slug="other-campaign")

    page = manager_client.get(change_url(pool)).content.decode()

    assert options(page, "fallback_pool") == ["draft-spare", "spare"]


def test_a_fallback_that_has_since_ended_stays_offered_so_the_pool_can_be_saved(manager_client):
    campaign = make_campaign()
    spare = make_pool(campaign, slug="spare", launched=True)
    pool = make_pool(campaign, slug="main", fallback_pool=spare)
    pool_end(pool=spare)

    page = manager_client.get(change_url(pool)).content.decode()

    assert options(page, "fallback_pool") == ["spare"]


def test_names_filled_in_on_save_are_marked_automatic(manager_client):
    pool = make_pool(make_campaign("Spring"), description="")
    typed = make_pool(description="", slug="my-own", template_parameter="MINE")

    page = manager_client.get(change_url(pool)).content.decode()
    other = manager_client.get(change_url(typed)).content.decode()

    assert re.search(r'<input[^>]*name="slug"[^>]*data-automatic', page)
    assert re.search(r'<input[^>]*name="template_parameter"[^>]*data-automatic', page)
    assert "data-automatic" not in other
