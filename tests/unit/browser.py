"""Headless Chromium driven over the DevTools protocol (a WebSocket itself), for the live page's test.

No WebDriver needed: Chromium serves the protocol on a local port, and the websockets client the tests
already use speaks it.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import websockets
from gateway_harness import TIMEOUT

CHROMIUM = shutil.which("chromium")


class Chromium:
    """A headless Chromium with one page open at `url`; close() ends it."""

    def __init__(self, profile: Path, url: str) -> None:
        assert CHROMIUM is not None
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",  # the tests run as root
                "--disable-gpu",
                "--no-first-run",
                "--window-size=1100,700",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                url,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._port_file = profile / "DevToolsActivePort"

    def page_socket(self) -> str:
        """The DevTools WebSocket URL of the page (waits for Chromium to come up)."""
        deadline = time.monotonic() + TIMEOUT * 3
        while time.monotonic() < deadline:
            if self._port_file.exists() and self._port_file.read_text().count("\n") >= 1:
                port = self._port_file.read_text().split()[0]
                address = f"http://127.0.0.1:{port}/json/list"
                with urllib.request.urlopen(address, timeout=TIMEOUT) as answer:
                    pages = [t for t in json.load(answer) if t["type"] == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise AssertionError("Chromium's DevTools endpoint never came up")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class DevTools:
    """Commands to one page: `async with DevTools(url) as page: await page.evaluate("1 + 1")`."""

    def __init__(self, url: str) -> None:
        self._connect = websockets.connect(url, max_size=None, open_timeout=TIMEOUT)
        self._ids = itertools.count(1)
        self._socket: Any = None

    async def __aenter__(self) -> DevTools:
        self._socket = await self._connect.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._connect.__aexit__(None, None, None)

    async def call(self, method: str, **params: object) -> dict[str, Any]:
        number = next(self._ids)
        await self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            answer = json.loads(await self._socket.recv())
            if answer.get("id") == number:  # events (no id) are not asked for, skip any
                assert "error" not in answer, answer
                return answer["result"]

    async def evaluate(self, expression: str) -> object:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def screenshot(self) -> bytes:
        return base64.b64decode((await self.call("Page.captureScreenshot", format="png"))["data"])
