import pytest

from tests.model.world import ZONE


@pytest.fixture(autouse=True)
def _zone_with_summer_time(settings):
    """Run the model's machines in a time zone whose clocks change while they run."""
    settings.TIME_ZONE = ZONE
