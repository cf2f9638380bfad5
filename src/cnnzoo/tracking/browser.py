"""The MLflow UI as users see it: `mlflow ui --workers 1` (as `make ui`) on a store, driven by
headless Debian Chromium through Selenium (no browser download). Used by the browser test and
by `make docs-images` for the docs' screenshots."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# MLflow's UI starts in its GenAI view unless the URL asks for the model-training one.
ML_VIEW = "workflowType=machine_learning"


def missing_browser() -> str | None:
    """Why no browser can be driven here, or None."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return ("Debian chromium + chromium-driver not installed (scripts/install-browser.sh "
                "installs them where apt can)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (pip install -e '.[dev]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_ui(store: Path, cwd: Path, env: dict | None = None,
              timeout: float = 90) -> Iterator[str]:
    """The UI on SQLite `store` at a free loopback port; yields its base URL."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--workers", "1", "--host",
                               "127.0.0.1", "--port", str(port), "--backend-store-uri",
                               f"sqlite:///{Path(store).resolve()}"], cwd=cwd, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow ui did not answer /health within {timeout:.0f} s"
                                       f" (exit code {server.poll()})") from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


class Browser:
    """Headless Chromium at a fixed window size; `page` opens a UI path in the model-training
    view, waits until every given text is on the page and optionally saves a screenshot."""

    def __init__(self, base_url: str, shots: Path, width: int = 1600, height: int = 1000):
        from selenium import webdriver

        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    f"--window-size={width},{height}"):
            options.add_argument(arg)
        service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
        self.driver = webdriver.Chrome(options=options, service=service)
        self.base_url, self.shots = base_url, Path(shots)
        self.shots.mkdir(parents=True, exist_ok=True)

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def page(self, path: str, *texts: str, shot: str | None = None, wait: float = 60) -> str:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get(f"{self.base_url}/#{path}{'&' if '?' in path else '?'}{ML_VIEW}")
        try:
            WebDriverWait(self.driver, wait).until(lambda _: all(t in self.text() for t in texts))
        except Exception as err:
            self.driver.save_screenshot(str(self.shots / "failed.png"))
            raise AssertionError(f"{path}: {texts} not all shown; the page says: "
                                 f"{self.text()[:1500]!r}") from err
        if shot:
            time.sleep(1)  # let the last rows and images render before the picture
            self.driver.save_screenshot(str(self.shots / shot))
        return self.text()

    def shows_image(self, width: int, wait: float = 30) -> bool:
        """Whether an <img> of natural width `width` has loaded: the UI shows an artifact PNG
        from a blob: URL, so the picture's own size is what identifies it."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        def loaded(driver) -> bool:
            return any(img.get_attribute("naturalWidth") == str(width)
                       for img in driver.find_elements(By.TAG_NAME, "img"))

        try:
            WebDriverWait(self.driver, wait).until(loaded)
        except Exception:  # noqa: BLE001 — a timeout is the answer "no"
            return False
        return True

    def close(self) -> None:
        self.driver.quit()
