"""A real `armscope serve` and a headless Chromium for the browser tests (no downloads: Debian's binaries)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.service_support import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# A run that trains in seconds on the served worker (add its method and seed).
TINY = {
    "dataset": "synthetic-shift",
    "epochs": 2,
    "device": "cpu",
    "dataset_options": {"n_samples": 400, "dims": 8},
    "model_options": {"feature_dim": 16, "encoder": {"name": "mlp", "hidden": [16]}},
}


class Server:
    """`armscope serve` (SQLite, embedded broker and worker) in a fresh ARMSCOPE_HOME."""

    def __init__(self, home: Path, token: str | None = None, **extra_env: str) -> None:
        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARMSCOPE_")}
        env.update({"ARMSCOPE_HOME": str(home), "ARMSCOPE_HEARTBEAT_SECONDS": "0.5", **extra_env})
        if token:
            env["ARMSCOPE_API_TOKEN"] = token
        self.log = open(home / "serve.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "armscope", "serve", "--port", str(self.port)],
            env=env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.api = httpx.Client(base_url=f"{self.url}/api/v1", timeout=10, headers=headers)

    def wait_ready(self, timeout: float = 60) -> None:
        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"armscope serve exited:\n{self.logs()}")
            try:
                return self.api.get("/health").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout, "armscope serve to answer /api/v1/health")

    def submit(self, config: dict[str, Any]) -> int:
        response = self.api.post("/runs", json=config)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def wait_finished(self, run_id: int, timeout: float = 90) -> dict[str, Any]:
        run = wait_for(
            lambda: (
                (r := self.api.get(f"/runs/{run_id}").json())["status"] in ("succeeded", "failed", "cancelled") and r
            ),
            timeout,
            f"run {run_id} to finish",
            every=0.3,
        )
        assert run["status"] == "succeeded", f"run {run_id} {run['status']}: {run.get('error')}\n{self.logs()}"
        return run

    def logs(self) -> str:
        self.log.flush()
        return (self.home / "serve.log").read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        self.api.close()
        if self.proc.poll() is None:
            self.proc.terminate()  # the server stops its embedded worker in order
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.log.close()


def chromium() -> Any:
    """Headless Debian Chromium through Debian's chromedriver; Selenium Manager stays offline."""
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).exists():
            raise RuntimeError(f"{binary} is missing: apt-get install -y chromium chromium-driver (.ci/run does)")
    profile = tempfile.mkdtemp(prefix="armscope-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1440,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver._armscope_profile = profile  # removed in quit()
    return driver


def quit_browser(driver: Any) -> None:
    driver.quit()
    shutil.rmtree(getattr(driver, "_armscope_profile", ""), ignore_errors=True)


def screenshot(driver: Any, name: str) -> Path:
    """The whole page (the window grows to the page's height) under test-output/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    width = driver.get_window_size()["width"]
    height = driver.execute_script(  # the page's height plus the window's own frame
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
        " + window.outerHeight - window.innerHeight"
    )
    driver.set_window_size(width, min(max(int(height) + 10, 900), 4000))
    time.sleep(0.3)  # let plotly's responsive charts settle at the new size
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(width, 1000)
    return path


def severe_errors(driver: Any) -> list[str]:
    """Console errors (failed callbacks answer 500 and log here); the missing favicon is not one."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]


def css_id(ident: dict[str, Any]) -> str:
    """A CSS selector for a Dash pattern-matching id (rendered as JSON with sorted keys)."""
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return "[id='" + text + "']"


def replace_text(element: Any, text: str) -> None:
    """Type ``text`` into an input in place of what it holds, as a person selecting all and typing would."""
    from selenium.webdriver.common.keys import Keys

    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.DELETE)
    element.send_keys(text)
