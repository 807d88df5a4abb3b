"""docker-compose.yml is kept right without a Docker engine: its commands and settings are the product's own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from armscope.data.paths import DATA_ROOT_VARIABLE
from cli.main import app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
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


def gibibytes(size: str) -> float:
    """A Compose byte size such as 8gb, 512m or 64k, in GiB."""
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([kmg])b?", size.lower()).groups()
    return float(number) * {"k": 2**-20, "m": 2**-10, "g": 1.0}[unit]


@pytest.mark.parametrize("worker", ["worker-cpu", "worker-gpu"])
def test_workers_have_shared_memory_for_their_data_loader_processes(worker):
    # Docker gives a container 64 MB of /dev/shm; loader processes pass whole batches through it.
    assert gibibytes(SERVICES[worker]["shm_size"]) >= 1


def test_the_image_has_the_compiler_that_compiled_arm_steps_need():
    installs = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if "apt-get install" in line]
    assert any(" g++" in line for line in installs)
