from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from secretswitch.embedded_stack.stack import EmbeddedStack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def client_stack() -> Iterator["EmbeddedStack"]:
    """The rotating clients' own stack (region ap-southeast-2): their tests change passwords and stop moto."""
    from secretswitch.embedded_stack.stack import EmbeddedStack

    with EmbeddedStack(region="ap-southeast-2") as running:
        yield running
