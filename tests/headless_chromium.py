"""Headless Chromium for tests, driven over the DevTools protocol on a pipe: no pip package, no browser
download, no port. `--remote-debugging-pipe` makes Chromium read NUL-terminated JSON commands from fd 3
and write replies and events to fd 4 (the transport Puppeteer and Playwright use themselves).

    with HeadlessChromium() as browser:
        page = browser.open("file:///tmp/report.html")
        page.evaluate("document.title")
        browser.console_errors, browser.page_errors, browser.dialogs, browser.requests

Debian's /usr/bin/chromium is used (`make browser` installs it); the browser test fails when it is missing.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium tries (and, offline, fails) to reach Google's
# services many times; a fresh profile keeps runs independent of each other.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-breakpad", "--disable-crash-reporter", "--remote-debugging-pipe"]


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


class BrowserError(RuntimeError):
    pass


class HeadlessChromium:
    def __init__(self, width: int = 1280, height: int = 900, timeout: float = 30.0):
        self.width, self.height, self.timeout = width, height, timeout
        self.console_errors: list[str] = []   # console.error(...) calls and error-level log entries
        self.page_errors: list[str] = []      # uncaught exceptions
        self.dialogs: list[str] = []          # alert/confirm/prompt that opened (dismissed at once)
        self.requests: list[str] = []         # every URL the page asked for
        self._events: list[dict] = []
        self._next_id = 0
        self._buffer = b""

    # -- process --------------------------------------------------------------------------------------
    def __enter__(self) -> "HeadlessChromium":
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def wire_fds():  # in the child, before exec: the pipe ends become fds 3 and 4, where Chromium expects them
            # Copies at fd >= 5 first, so that neither dup2 below can overwrite the other pipe end.
            read_end = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 5)
            write_end = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 5)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        # pass_fds keeps 3 and 4 open through the close-everything-else step, which runs after preexec_fn.
        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", f"--window-size={self.width},{self.height}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds, pass_fds=(3, 4))
        os.close(to_browser_read)
        os.close(from_browser_write)
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.process.poll() is None:
                try:
                    self.send("Browser.close")
                except (BrowserError, OSError):
                    pass
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()  # our own child, by its handle
                    self.process.wait(timeout=10)
        finally:
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._wait_for_helpers()
            shutil.rmtree(self.profile, ignore_errors=True)

    def _wait_for_helpers(self, timeout: float = 10.0) -> None:
        """Chromium's helper processes (zygote, renderers) outlive the browser process by a moment; wait
        until none that runs with our profile is left, so a test leaves nothing running behind it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = []
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    if self.profile.encode() in cmdline.read_bytes():
                        alive.append(cmdline.parent.name)
                except OSError:
                    continue
            if not alive:
                return
            time.sleep(0.1)

    # -- protocol -------------------------------------------------------------------------------------
    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._handle_event(reply)

    def wait_for(self, method: str, timeout: float | None = None) -> dict:
        """The first event `method` seen since the last call that asked for it."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method:
                    return self._events.pop(i)
            self._handle_event(self._read(deadline))

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium exited (code {self.process.poll()})")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def _handle_event(self, event: dict) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.console_errors.append(params["entry"].get("text", ""))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.page_errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(params.get("message", ""))
            # Answer it at once: an open alert would block the page (and this test) forever.
            os.write(self._to_browser, json.dumps({"id": 0, "method": "Page.handleJavaScriptDialog",
                                                   "params": {"accept": False},
                                                   "sessionId": event.get("sessionId")}).encode() + b"\0")
        elif method == "Network.requestWillBeSent":
            self.requests.append(params.get("request", {}).get("url", ""))
        self._events.append(event)

    # -- pages ----------------------------------------------------------------------------------------
    def open(self, url: str) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False})
        self._events.clear()
        page.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")
        return page


class Page:
    def __init__(self, browser: HeadlessChromium, session: str):
        self.browser, self.session = browser, session

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session)

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression (promises awaited); page exceptions raise."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result.get("result", {}).get("value")

    def screenshot(self, path: str | Path, top: float = 0, height: float | None = None) -> Path:
        """A PNG of the page from `top` down `height` CSS pixels (default: to the end of the page)."""
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        height = min(height or size["height"] - top, 12000)
        params = {"format": "png", "captureBeyondViewport": True,
                  "clip": {"x": 0, "y": top, "width": size["width"], "height": height, "scale": 1}}
        data = self.send("Page.captureScreenshot", params)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)
