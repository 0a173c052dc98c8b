"""`tidewatch dashboards build` and `push`.

No Grafana server is available on this machine (Grafana is in neither Debian's nor PyPI's
repositories), so `push` is tested against a loopback HTTP server that answers Grafana's
dashboard API the way Grafana documents it and records what it was sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from dashboards.build import JSON_DIR, build_all
from monitor.cli import app

runner = CliRunner()


def test_build_writes_what_is_kept(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dashboards", "build", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(build_all())
    for name in written:
        assert (tmp_path / "out" / name).read_text() == (JSON_DIR / name).read_text()


class _Grafana(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    status = 200

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        uid = body["dashboard"]["uid"]
        answer = (
            {"status": "success", "uid": uid, "url": f"/d/{uid}/x", "version": 1}
            if self.status == 200
            else {"message": "invalid API key"}
        )
        data = json.dumps(answer).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def grafana() -> Iterator[tuple[str, type[_Grafana]]]:
    handler = type("Handler", (_Grafana,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()


def test_push_saves_every_dashboard_by_uid(grafana: tuple[str, type[_Grafana]]) -> None:
    url, handler = grafana
    args = ["dashboards", "push", "--grafana-url", url, "--token", "glsa_T", "--folder-uid", "tw"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {r["path"] for r in handler.received} == {"/api/dashboards/db"}
    assert {r["auth"] for r in handler.received} == {"Bearer glsa_T"}
    uids = sorted(r["body"]["dashboard"]["uid"] for r in handler.received)
    assert uids == sorted(d["uid"] for d in build_all().values())
    assert all(r["body"]["overwrite"] and r["body"]["folderUid"] == "tw" for r in handler.received)
    assert f"pushed {url}/d/tidewatch-model/x" in result.output


def test_push_reports_a_refusal(grafana: tuple[str, type[_Grafana]]) -> None:
    url, handler = grafana
    handler.status = 401
    result = runner.invoke(app, ["dashboards", "push", "--grafana-url", url, "--token", "bad"])
    assert result.exit_code == 1
    assert "Grafana refused (401)" in result.output


def test_push_reports_an_unreachable_grafana() -> None:
    args = ["dashboards", "push", "--grafana-url", "http://127.0.0.1:1", "--token", "t"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "could not reach" in result.output
