"""A real OpenID provider on loopback for the OIDC sign-in tests: ``oidc-provider-mock`` (a Flask
app on Authlib's server side: discovery, keys, authorization code flow, signed ID tokens) run as
its own process from ``.venv-oidc-provider`` (``make test`` makes it; tests/oidc-provider.txt
says why it is apart). Under CI=true its absence fails the test (service_missing).

Its sign-in page lists the users given here as buttons; one click signs that user in with the
claims given (``sub``, ``email``, ``email_verified``, ``groups``, ...).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from monitor.server import free_port
from tests.conftest import service_missing

ROOT = Path(__file__).parents[1]
PROVIDER = ROOT / ".venv-oidc-provider" / "bin" / "oidc-provider-mock"
CLIENT_ID = "tidewatch-test"
CLIENT_SECRET = "not-so-secret-test-client"


def _program() -> str:
    if PROVIDER.exists():
        return str(PROVIDER)
    found = shutil.which("oidc-provider-mock")
    if found is None:
        service_missing("oidc-provider-mock", f"{PROVIDER} not found: run `make test` once")
    assert found is not None
    return found


@contextmanager
def oidc_provider(
    users: Sequence[dict[str, Any]], log: Path, host: str = "localhost"
) -> Iterator[str]:
    """The provider's issuer URL while it runs, with these users (each with its ``sub``).

    ``host``: the name Tidewatch and the browser reach it by; ``localhost`` makes it another
    site than Tidewatch on ``127.0.0.1``, as a real provider is (SameSite rules apply).
    """
    port = free_port()
    command = [_program(), "--host", "127.0.0.1", "--port", str(port), "--require-nonce", "true"]
    for user in users:
        command += ["--user-claims", json.dumps(user)]
    issuer = f"http://{host}:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_until_up(issuer, process, log)
            yield issuer
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _wait_until_up(issuer: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"oidc-provider-mock exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"oidc-provider-mock did not start: {log.read_text()[-2000:]}")
