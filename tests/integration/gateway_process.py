"""A ``sandan gateway`` subprocess for the integration tests, and a small HTTP client for it.

Every wait is bounded: a gateway that does not answer fails the test, it never hangs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.kafka import ROOT, Timeout, free_port

__all__ = ("GatewayProcess", "Reply", "request")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    """One HTTP request; any status is a Reply (no exception for 4xx/5xx)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310 - http://127.0.0.1 only
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


@dataclass
class GatewayProcess:
    """A gateway subprocess on a free port, with the deployment's settings."""

    env: dict[str, str]
    keys: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    args: tuple[str, ...] = ()  # more arguments of ``sandan gateway``, e.g. ("-l", "debug")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, healthy: bool = True, seconds: float = 60) -> GatewayProcess:
        """Start it and wait until /healthz answers (200 if ``healthy``, else any status)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDAN_")}
        env.update(self.env)
        env["SANDAN_GATEWAY_PORT"] = str(self.port)
        env["SANDAN_GATEWAY_KEYS"] = str(self.keys)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "gateway", *self.args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        self.wait_health(200 if healthy else None, seconds)
        return self

    def wait_health(self, status: int | None, seconds: float = 60) -> Reply:
        """Until /healthz answers ``status`` (None: anything)."""
        timeout = Timeout(seconds, f"the gateway's /healthz to answer {status or 'at all'}")
        while timeout:
            assert self.process is not None
            if self.process.poll() is not None:
                msg = f"gateway exited with {self.process.returncode}:\n{self.log_tail()}"
                raise RuntimeError(msg)
            try:
                reply = request(self.base + "/healthz", timeout=2)
            except OSError:
                reply = None
            if reply is not None and (status is None or reply.status == status):
                return reply
            time.sleep(0.1)
        raise AssertionError("unreachable")

    def post(self, path: str, body: bytes, key: str | None, content_type: str) -> Reply:
        headers = {"Content-Type": content_type}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return request(self.base + path, method="POST", body=body, headers=headers)

    def get(self, path: str, key: str | None = None, timeout: float = 40.0) -> Reply:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return request(self.base + path, headers=headers, timeout=timeout)

    def stop(self) -> int | None:
        """SIGTERM (graceful); SIGKILL if it does not stop within 30 s."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        return self.process.returncode

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (Linux /proc)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
