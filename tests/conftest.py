from __future__ import annotations

import os
from typing import Any

# Before torch loads (here and in every process the tests start, which inherit it): torch's OpenMP
# threads sleep while they wait instead of spinning. On a machine shared with other work, spinning
# threads fight the work for the cores and make the small training runs here many times slower; the
# number of threads, and so every number a run computes, stays the same.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from armscope.config import RunConfig  # noqa: E402
from tests.support import CATEGORIES, CATEGORIES_OF  # noqa: E402

# -- what kind of test each one is ------------------------------------------------------------
# Every test is exactly one of these (registered in pyproject.toml; tests/test_markers.py checks):
#   unit     in this process, one part at a time (no whole server app), quick: `python -m pytest -m unit`
#            runs them all in under a minute
#   service  the service as it runs: builds the whole server app (API and dashboard; in this process
#            or as `armscope serve`), starts other real processes (workers, the CLI, a fresh
#            interpreter), or uses PostgreSQL or Redis
#   browser  drives headless Chromium against a real `armscope serve`
#   gpu      needs a CUDA device; skipped without one
# A test or module may mark itself; else the fixtures it uses (below) or the store's database decide;
# what is left is unit.
BROWSER_FIXTURES = frozenset({"browser"})
SERVICE_FIXTURES = frozenset({
    "postgres_database", "postgres_url", "postgres_store",
    # The test modules' fixtures of these names build the whole app (server.app.create_app).
    "app", "api", "client", "limited_app", "fuzzed_app",
})


def category_of(item: pytest.Item) -> str:
    """The closest category marker, else what the test's fixtures (and the store's database) say, else unit."""
    for mark in item.iter_markers():
        if mark.name in CATEGORIES:
            return mark.name
    fixtures = set(getattr(item, "fixturenames", ()))
    params = getattr(getattr(item, "callspec", None), "params", {})
    if fixtures & BROWSER_FIXTURES:
        return "browser"
    if fixtures & SERVICE_FIXTURES or params.get("store") == "postgresql":
        return "service"
    return "unit"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cuda: bool | None = None
    for item in items:
        category = category_of(item)
        if item.get_closest_marker(category) is None:
            item.add_marker(category)
        if category == "gpu":
            if cuda is None:
                import torch

                cuda = torch.cuda.is_available()
            if not cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
    # Every collected test's categories, before `-m` deselects any, for tests/test_markers.py.
    config.stash[CATEGORIES_OF] = {
        item.nodeid: sorted({m.name for m in item.iter_markers() if m.name in CATEGORIES}) for item in items
    }


@pytest.fixture
def tiny_config() -> Any:
    """A run that trains in well under a second: small synthetic data, few epochs."""

    def make(**overrides: Any) -> RunConfig:
        raw: dict[str, Any] = {
            "dataset": "synthetic-shift",
            "dataset_options": {"n_samples": 600, "dims": 8},
            "method": "arm",
            "epochs": 3,
            "batch_size": 64,
            "model_options": {"feature_dim": 16, "encoder": {"name": "mlp", "hidden": [32]}},
            "device": "cpu",
        }
        raw.update(overrides)
        return RunConfig.model_validate(raw)

    return make


@pytest.fixture(scope="session")
def postgres_database() -> Any:
    """Makes fresh PostgreSQL databases on the local server, dropped after the session.

    Never skipped: CI starts PostgreSQL in .ci/run, and a missing server must fail loudly.
    """
    import os
    import uuid

    from sqlalchemy import create_engine, text

    server = os.environ.get("ARMSCOPE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    created: list[str] = []

    def make() -> str:
        name = f"armscope_test_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return f"{server}/{name}"

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_url(postgres_database: Any) -> str:
    return postgres_database()


@pytest.fixture(scope="session")
def postgres_store(postgres_url: str) -> Any:
    from service.db.store import Store

    store = Store(postgres_url)
    store.upgrade()
    yield store
    store.dispose()


def _clear(store: Any) -> None:
    from sqlalchemy import text

    with store.engine.begin() as conn:
        conn.execute(text("TRUNCATE runs, sweeps, run_tags, epoch_metrics, events, workers, saved_views RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: Any, tmp_path: Any) -> Any:
    """The store on both databases the product supports, empty for each test."""
    from service.db.store import Store

    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres_store")
        _clear(pg)
        yield pg
        return
    sqlite_store = Store(f"sqlite:///{tmp_path / 'armscope.db'}")
    sqlite_store.upgrade()
    yield sqlite_store
    sqlite_store.dispose()


@pytest.fixture
def queue() -> Any:
    """A task queue that records what it was sent instead of sending it."""
    from tests.fakes import RecordingQueue

    return RecordingQueue()


@pytest.fixture
def api(store: Any, queue: Any, tmp_path: Any) -> Any:
    """The whole server app over the store (both databases) in this process, with a fresh home: a test client."""
    from fastapi.testclient import TestClient

    from server.app import create_app
    from service.settings import Settings

    with TestClient(create_app(Settings(home=tmp_path / "home"), store, queue)) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Any:
    """A headless Chromium (Debian's) shared by a module's browser tests."""
    from tests.browser_support import chromium, quit_browser

    driver = chromium()
    try:
        yield driver
    finally:
        quit_browser(driver)


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any) -> Any:
    """A real `armscope serve` (SQLite, embedded broker and worker) in a fresh home, for a module's browser tests."""
    from tests.browser_support import Server

    served = Server(tmp_path_factory.mktemp("serve"))
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


@pytest.fixture
def ctx(tmp_path: Any) -> Any:
    """The dashboard's context over a fresh SQLite store and a queue that records what it was sent."""
    from dashboard.context import Context
    from service.db.store import Store
    from service.settings import Settings
    from tests.fakes import RecordingQueue

    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    store = Store(settings.resolved_database_url)
    store.upgrade()
    yield Context(store=store, settings=settings, queue=RecordingQueue(), page_size=25)
    store.dispose()

