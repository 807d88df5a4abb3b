"""docker-compose.yml is kept right without a Docker engine: its commands and settings are the product's own."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from armscope.cli import app
from armscope.data.paths import DATA_ROOT_VARIABLE
from backend.settings import Settings

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[1] / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ARMSCOPE_SERVICES = sorted(name for name, service in SERVICES.items() if (service.get("command") or [""])[0] == "armscope")


def test_the_api_and_both_workers_run_armscope():
    assert ARMSCOPE_SERVICES == ["api", "worker-cpu", "worker-gpu"]


@pytest.mark.parametrize("service", ARMSCOPE_SERVICES)
def test_each_services_command_is_one_the_cli_accepts(service):
    result = CliRunner().invoke(app, [*SERVICES[service]["command"][1:], "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("service", ARMSCOPE_SERVICES)
def test_each_services_settings_are_ones_armscope_reads(service):
    names = {name for name in SERVICES[service]["environment"] if name.startswith("ARMSCOPE_")}
    known = {f"ARMSCOPE_{field.upper()}" for field in Settings.model_fields} | {DATA_ROOT_VARIABLE}
    assert names and names <= known, names - known


def test_workers_wait_for_the_api_which_migrates_the_database_first():
    for worker in ("worker-cpu", "worker-gpu"):
        assert SERVICES[worker]["depends_on"]["api"]["condition"] == "service_healthy"
    assert SERVICES["worker-gpu"]["command"][-1].split(",")[0] == "gpu"
