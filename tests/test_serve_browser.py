"""``fga-tui demo --serve`` in a real headless browser (Debian's chromium, driven through the
DevTools protocol over a websocket with aiohttp, which textual-serve already brings).

The test starts the server on a free localhost port, loads the page, waits until the app's
screen reaches the page's terminal with the atom labels on it, saves a screenshot, and stops
both. xterm.js draws on a canvas, so the text is read where the terminal reads it: a small
script installed before the page's own wraps ``WebSocket`` and keeps the decoded bytes the
terminal is given. Skipped when chromium is missing (CI installs it).
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).parents[1]
#: Where the screenshot is kept for a human to look at (also copied into tmp_path).
SHOT_ENV = "FGA_TUI_BROWSER_SHOT"
TIMEOUT_S = 180

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium not installed (apt-get install chromium)"
    ),
]

# Installed before the page's scripts: keep what the terminal is fed, decoded, for the test.
HOOK = """
(() => {
  const Real = window.WebSocket;
  window.__fgaText = "";
  const decoder = new TextDecoder();
  window.WebSocket = function (...args) {
    const ws = new Real(...args);
    ws.addEventListener("message", (e) => {
      if (typeof e.data !== "string") {
        const text = window.__fgaText + decoder.decode(e.data, {stream: true});
        window.__fgaText = text.slice(-400000);
      }
    });
    return ws;
  };
  window.WebSocket.prototype = Real.prototype;
})();
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


class DevTools:
    """The smallest DevTools-protocol client: send a command, await its result."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params):
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send_json({"id": my_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=60)
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")


async def _drive(devtools_port: int, url: str, shot: Path) -> str:
    import json

    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{devtools_port}/json/list") as r:
            targets = json.loads(await r.text())
        page = next(t for t in targets if t.get("type") == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            dt = DevTools(ws)
            await dt.call("Page.enable")
            await dt.call("Page.addScriptToEvaluateOnNewDocument", source=HOOK)
            await dt.call(
                "Emulation.setDeviceMetricsOverride",
                width=1280,
                height=800,
                deviceScaleFactor=1,
                mobile=False,
            )
            await dt.call("Page.navigate", url=url)
            deadline = time.monotonic() + TIMEOUT_S
            text = ""
            while time.monotonic() < deadline:
                ready = await dt.evaluate(
                    "document.body !== null && document.body.classList.contains('-first-byte')"
                )
                text = await dt.evaluate("window.__fgaText || ''") or ""
                if ready and "Ba_0" in text and "Li_5" in text:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)  # let the terminal paint the last frame
            png = await dt.call("Page.captureScreenshot", format="png")
            shot.write_bytes(base64.b64decode(png["data"]))
            return text


def test_demo_serve_renders_the_atoms_in_a_headless_browser(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "FGA_TUI_CONFIG": str(tmp_path / "settings.toml"),
        "TEXTUAL_ANIMATIONS": "none",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fga_tui",
            "demo",
            "--serve",
            "--port",
            str(port),
            "--device",
            "cpu",
            "--snapshot-dir",
            str(tmp_path / "snaps"),
        ],
        cwd=tmp_path,
        env=env,
        # Files, not pipes: a pipe nobody reads would stall the server once it fills.
        stdout=(tmp_path / "serve.out").open("w"),
        stderr=(tmp_path / "serve.err").open("w"),
        start_new_session=True,
    )
    profile = tmp_path / "chromium-profile"
    browser = None
    try:
        _wait_http(f"http://127.0.0.1:{port}/", time.monotonic() + 60)
        browser = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (active.exists() and active.read_text().strip()):
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            assert browser.poll() is None, "chromium exited"
            time.sleep(0.2)
        devtools_port = int(active.read_text().splitlines()[0])
        shot = tmp_path / "serve.png"
        text = asyncio.run(_drive(devtools_port, f"http://localhost:{port}/", shot))
    finally:
        if browser is not None:
            _stop(browser, signal.SIGTERM)
        _stop(server)
    err = (tmp_path / "serve.err").read_text()
    assert "Ba_0" in text and "Li_5" in text, f"the atoms never reached the page\n{err[-2000:]}"
    assert "atoms (6)" in text  # the atoms pane itself, not just a word of the text
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    keep = os.environ.get(SHOT_ENV)
    if keep:
        Path(keep).write_bytes(data)
    assert "only this machine can connect" in err  # it said where it listens
    assert f"ssh -L {port}:localhost:{port}" in err
