"""The migrations build the schema the models declare, on both databases the product runs on, and unwind.

A column or index added to a model without its migration (or the other way round) would pass every
test that builds tables from the migrations yet differ from what the code expects; alembic's own
comparison of the migrated database with the models finds any such difference.
"""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from service.db.migrate import alembic_config, upgrade
from service.db.models import Base

pytestmark = pytest.mark.service


def database(kind: str, tmp_path, postgres_database) -> str:
    return f"sqlite:///{tmp_path / 'armscope.db'}" if kind == "sqlite" else postgres_database()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_migrated_database_is_what_the_models_declare(kind, tmp_path, postgres_database):
    engine = create_engine(database(kind, tmp_path, postgres_database))
    upgrade(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_every_migration_unwinds_to_an_empty_database(kind, tmp_path, postgres_database):
    url = database(kind, tmp_path, postgres_database)
    engine = create_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_run_names_are_indexed(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'armscope.db'}")
    upgrade(engine)
    assert "ix_runs_name" in {index["name"] for index in inspect(engine).get_indexes("runs")}
    engine.dispose()
