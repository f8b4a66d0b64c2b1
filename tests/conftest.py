"""Fixtures shared by the test modules."""

import pytest
from common import KINDS


@pytest.fixture(params=KINDS)
def kind(request):
    """Each trainer that runs sequences, by name: "eprop" or "online"."""
    return request.param
