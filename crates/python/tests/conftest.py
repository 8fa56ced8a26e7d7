"""One fleet (real nats-server, redis-server, coordinator, Rust worker) for
the whole suite; each test uses tools and limit keys of its own."""

import pytest

from support import Fleet


@pytest.fixture(scope="session")
def fleet():
    fleet = Fleet()
    try:
        yield fleet
    finally:
        fleet.stop()
