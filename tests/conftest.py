from __future__ import annotations

from typing import Any

import pytest

from armscope.config import RunConfig


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
        conn.execute(text("TRUNCATE runs, sweeps, run_tags, epoch_metrics, events, workers RESTART IDENTITY CASCADE"))


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
