"""Headless Chromium driven over the DevTools protocol, for the tests of the live page (the unit tests'
and the Molecule verifier's).

The protocol runs over `--remote-debugging-pipe` (JSON messages ended by NUL on fds 3 and 4): no port for
anything else on the controller to reach, and no WebSocket client needed. Chromium trusts exactly one
extra certificate, the test server's, by its public key (`spki_pin`); verification stays on for the rest.

    with browser.start("https://proxy01:9939/", host_resolver_rules="MAP proxy01 10.89.0.5",
                       spki_pin=browser.spki_pin("ca/server.crt")) as page:
        page.type_into("#prefix", "org.fedoraproject.")
        page.click("button[type=submit]")
        page.wait_for("document.querySelectorAll('#messages li').length >= 3")
        page.screenshot("page.png")
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["CHROMIUM_INSTALLED", "Browser", "BrowserError", "spki_pin", "start"]

CHROMIUM = "/usr/bin/chromium"
#: Whether Debian's chromium is there, for tests to skip on without it.
CHROMIUM_INSTALLED = os.access(CHROMIUM, os.X_OK)
#: Seconds one DevTools command may take, and the default of wait_for().
TIMEOUT = 30.0
_PEM_PUBLIC_KEY = re.compile(rb"-----BEGIN PUBLIC KEY-----(.+?)-----END PUBLIC KEY-----", re.DOTALL)


class BrowserError(Exception):
    """Chromium failed: it did not start, a page did not load, a script threw, a condition never held."""


def spki_pin(cert_pem_path: str | Path) -> str:
    """Base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as --ignore-certificate-errors-spki-list
    wants it (the same value as an HPKP pin)."""
    public_key = subprocess.run(
        ["openssl", "x509", "-noout", "-pubkey", "-in", str(cert_pem_path)],
        check=True,
        capture_output=True,
    ).stdout
    match = _PEM_PUBLIC_KEY.search(public_key)
    if match is None:
        raise BrowserError(f"{cert_pem_path}: openssl printed no public key")
    der = base64.b64decode(match.group(1))  # PEM is base64 of the DER SubjectPublicKeyInfo
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _chromium_arguments(
    profile: str, host_resolver_rules: str, spki_pin: str | None, window: tuple[int, int]
) -> list[str]:
    arguments = [
        CHROMIUM,
        "--headless=new",
        "--remote-debugging-pipe",
        f"--user-data-dir={profile}",  # also required for the SPKI list to be honoured
        f"--window-size={window[0]},{window[1]}",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--password-store=basic",
        # Test traffic stays on the test network: no updates, sync or other background requests.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-features=Translate,OptimizationHints,MediaRouter",
        "about:blank",
    ]
    if os.geteuid() == 0:
        arguments.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
    if host_resolver_rules:
        arguments.insert(1, f"--host-resolver-rules={host_resolver_rules}")
    if spki_pin is not None:
        arguments.insert(1, f"--ignore-certificate-errors-spki-list={spki_pin}")
    return arguments


class Browser:
    """One headless Chromium with one page; use start() to get one, and close it (or use `with`)."""

    def __init__(
        self,
        host_resolver_rules: str = "",
        spki_pin: str | None = None,
        screenshot_dir: str | Path | None = None,
        window: tuple[int, int] = (1280, 800),
    ) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True)
        self._screenshot_dir = Path(screenshot_dir) if screenshot_dir is not None else None
        self._log_path = Path(self._profile.name) / "chromium.log"
        self._ids = itertools.count(1)
        self._buffer = b""
        self._session: str | None = None
        # Chromium reads commands on its fd 3 and writes answers on its fd 4.
        commands_read, self._commands = os.pipe()
        self._answers, answers_write = os.pipe()
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                _chromium_arguments(self._profile.name, host_resolver_rules, spki_pin, window),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Python's own fds are not inheritable (PEP 446): only 3 and 4 reach Chromium. pass_fds
                # cannot be used: it closes what is not listed after preexec_fn, and 3 and 4 need not exist
                # here. preexec_fn does nothing but fcntl and dup2 (no locks taken).
                close_fds=False,
                preexec_fn=lambda: _pipes_to_3_and_4(commands_read, answers_write),  # noqa: PLW1509
                start_new_session=True,  # its own process group: close() can end every helper process
            )
        os.close(commands_read)
        os.close(answers_write)
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.call("Page.enable")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def call(self, method: str, timeout: float = TIMEOUT, **params: object) -> dict[str, Any]:
        """Send one DevTools command to the page (to the browser before a page is attached); its result."""
        number = next(self._ids)
        request: dict[str, object] = {"id": number, "method": method, "params": params}
        if self._session is not None:
            request["sessionId"] = self._session
        os.write(self._commands, json.dumps(request).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._next_message(deadline, method)
            if answer.get("id") == number:  # events (no id) are not subscribed to: skip them
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                return answer["result"]

    def _next_message(self, deadline: float, method: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._answers], [], [], remaining)[0]:
                raise BrowserError(f"{method}: no answer from Chromium in time{self._log_tail()}")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise BrowserError(f"{method}: Chromium exited{self._log_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _log_tail(self) -> str:
        lines = self._log_path.read_text(errors="replace").splitlines()[-5:]
        return "".join(f"\n  chromium: {line}" for line in lines)

    def navigate(self, url: str, timeout: float = TIMEOUT) -> None:
        """Load `url` and wait until it has loaded; BrowserError (e.g. net::ERR_CERT_...) if it cannot."""
        result = self.call("Page.navigate", timeout, url=url)
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout)

    def evaluate(self, js: str) -> Any:  # noqa: ANN401 - whatever the script returns, as JSON
        """The value of a JavaScript expression in the page (promises awaited), as JSON-decoded Python."""
        result = self.call("Runtime.evaluate", expression=js, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{js!r} threw: {text}")
        return result["result"].get("value")

    def wait_for(self, js_condition: str, timeout: float = TIMEOUT) -> Any:  # noqa: ANN401 - as evaluate()
        """Evaluate the condition until it is truthy and return its value; BrowserError (with a screenshot
        in screenshot_dir, if given) when it stays falsy for `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(js_condition)
            if value:
                return value
            if time.monotonic() > deadline:
                saved = self._failure_screenshot()
                raise BrowserError(f"never true within {timeout:.0f} s: {js_condition}{saved}")
            time.sleep(0.1)

    def _failure_screenshot(self) -> str:
        if self._screenshot_dir is None:
            return ""
        path = self.screenshot(f"wait-for-failure-{time.strftime('%Y%m%dT%H%M%S')}.png")
        return f" (screenshot: {path})"

    def _element_centre(self, selector: str) -> tuple[float, float]:
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if box is None:
            raise BrowserError(f"no element matches {selector!r}")
        return box[0], box[1]

    def type_into(self, selector: str, text: str) -> None:
        """Replace the value of the input matching `selector` with `text`, as typed (input events fire)."""
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false;"
            " e.focus(); e.select(); return true; })()"
        )
        if not found:
            raise BrowserError(f"no element matches {selector!r}")
        self.call("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        """A left mouse click at the centre of the element matching `selector`."""
        x, y = self._element_centre(selector)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def set_offline(self, offline: bool) -> None:
        """Cut the page off the network (its connections fail, new ones cannot be made) or bring it back."""
        self.call("Network.enable")
        no_throttling = {"latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
        self.call("Network.emulateNetworkConditions", offline=offline, **no_throttling)

    def screenshot(self, path: str | Path) -> Path:
        """Save the visible page as PNG; a relative path is taken under screenshot_dir when one was given."""
        target = Path(path)
        if not target.is_absolute() and self._screenshot_dir is not None:
            self._screenshot_dir.mkdir(parents=True, exist_ok=True)
            target = self._screenshot_dir / target
        target.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return target

    def close(self) -> None:
        """End Chromium and every process it started, and remove its profile; a second call does nothing."""
        if self._commands < 0:
            return
        if self._process.poll() is None:
            self._session = None
            with contextlib.suppress(BrowserError, OSError):  # no polite exit: killed below
                self.call("Browser.close", timeout=5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)  # the group this Popen made: helpers left over
        self._process.wait()
        os.close(self._commands)
        os.close(self._answers)
        self._commands = self._answers = -1
        self._profile.cleanup()


def _pipes_to_3_and_4(commands_read: int, answers_write: int) -> None:
    """In the child before exec: the pipe ends onto fds 3 and 4, via copies >= 5 (closed by exec) so that
    neither dup2 overwrites the other end."""
    commands = fcntl.fcntl(commands_read, fcntl.F_DUPFD_CLOEXEC, 5)
    answers = fcntl.fcntl(answers_write, fcntl.F_DUPFD_CLOEXEC, 5)
    os.dup2(commands, 3)
    os.dup2(answers, 4)


def start(
    url: str,
    *,
    host_resolver_rules: str = "",
    spki_pin: str | None = None,
    screenshot_dir: str | Path | None = None,
    window: tuple[int, int] = (1280, 800),
    timeout: float = TIMEOUT,
) -> Browser:
    """A headless Chromium with `url` loaded. host_resolver_rules: e.g. "MAP proxy01 10.89.0.5", so the
    page is loaded by the name its certificate has; spki_pin: spki_pin() of the one server certificate to
    trust besides the system's CAs. Raises BrowserError if the page cannot load (a certificate error too)."""
    browser = Browser(host_resolver_rules, spki_pin, screenshot_dir, window)
    try:
        browser.navigate(url, timeout)
    except BaseException:
        browser.close()
        raise
    return browser
