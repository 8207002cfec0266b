"""The pytest plugin: each test, or each marked test, in a snapshot child of pytest.

``pytest --goforkpy`` isolates every test; ``@pytest.mark.goforkpy`` (or
``@pytest.mark.goforkpy(timeout=10, memory="1G")``) isolates one. Fixtures of
class, module, package and session scope are set up in pytest's own process
before the fork, and torn down there; the test's function-scoped fixtures,
its call and their teardown run in the child. A test that crashes the
interpreter, runs past its timeout or leaves a process running fails alone,
saying why, and the session goes on.

Registered through the ``pytest11`` entry point; it changes nothing until
``--goforkpy`` or the marker is used, and imports goforkpy only then.
"""

from __future__ import annotations

from typing import Any

import pytest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._isolated_tests.measured import Sum
    from ._isolated_tests.settings import Settings


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("goforkpy", "isolating tests in goforkpy children")
    group.addoption(
        "--goforkpy",
        action="store_true",
        help="run each test in a snapshot child of pytest: a crash, hang or leftover "
        "process fails that test alone",
    )
    group.addoption(
        "--goforkpy-timeout",
        metavar="SECONDS",
        help="an isolated test running longer fails, and everything it started is ended",
    )
    group.addoption(
        "--goforkpy-memory",
        metavar="SIZE",
        help='the address space each isolated test may use, such as "512M" or "2G"',
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "goforkpy(timeout=None, memory=None): run this test in a snapshot child of pytest "
        "(see --goforkpy), optionally with its own timeout in seconds and memory limit",
    )
    if config.getoption("goforkpy_timeout") is not None or config.getoption("goforkpy_memory"):
        _defaults(config)  # a bad value is a usage error now, not at the first test


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A marker that asks for what the plugin has not is a usage error, named now."""
    for item in items:
        if item.get_closest_marker("goforkpy") is not None:
            _settings(item)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if not _isolated(item):
        return None
    from ._isolated_tests import isolation

    isolation.run(item, nextitem, _settings(item), _lines(item.config))
    return True


@pytest.hookimpl(hookwrapper=True, trylast=True)  # old-style: any pluggy pytest 7 has
def pytest_runtestloop(session: pytest.Session) -> Any:
    """Once the tests ran (inside pytest-cov's wrapper, which then saves): the lines
    the isolated tests ran are added to pytest's coverage."""
    yield
    lines = session.config.stash.get(_LINES, None)
    if lines is not None:
        lines.hand_over()


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """pytest-timeout's timeout of an isolated test is its child's: the child is ended
    with everything it started, and the report shows the test's stack, not pytest's."""
    if settings.func_only or not _isolated(item):
        return None  # func_only: pytest-timeout times the call in the child itself
    item.stash[_PYTEST_TIMEOUT] = float(settings.timeout)
    return True


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> bool | None:
    return True if _PYTEST_TIMEOUT in item.stash else None


_PYTEST_TIMEOUT = pytest.StashKey[float]()


def _isolated(item: pytest.Item) -> bool:
    if item.config.getoption("usepdb"):
        return False  # the debugger needs the test in pytest's own process, at its terminal
    return item.config.getoption("goforkpy") or item.get_closest_marker("goforkpy") is not None


def _defaults(config: pytest.Config) -> Settings:
    """The options' settings, checked once."""
    if _SETTINGS not in config.stash:
        from ._isolated_tests.settings import Settings

        config.stash[_SETTINGS] = Settings.checked(
            "--goforkpy-timeout",
            config.getoption("goforkpy_timeout"),
            "--goforkpy-memory",
            config.getoption("goforkpy_memory"),
        )
    return config.stash[_SETTINGS]


_SETTINGS = pytest.StashKey["Settings"]()


def _lines(config: pytest.Config) -> Sum:
    """What the isolated tests ran under coverage, added up."""
    if _LINES not in config.stash:
        from ._isolated_tests.measured import Sum

        config.stash[_LINES] = Sum()
    return config.stash[_LINES]


_LINES = pytest.StashKey["Sum"]()


def _settings(item: pytest.Item) -> Settings:
    """The options, with what the test's marker says instead where it says it, and
    pytest-timeout's timeout where it is the shorter."""
    settings = _defaults(item.config)
    marker = item.get_closest_marker("goforkpy")
    if marker is not None:
        settings = settings.with_marker(marker, item.nodeid)
    if _PYTEST_TIMEOUT in item.stash:
        settings = settings.with_pytest_timeout(item.stash[_PYTEST_TIMEOUT])
    return settings
