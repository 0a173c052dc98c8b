"""Upload the generated dashboards to a Grafana with grafana-client (the maintained successor of
grafana-api), for platforms that do not provision them from files.

Each dashboard is saved with ``overwrite`` on, by its fixed uid, so pushing again updates it in
place (Grafana keeps the previous versions in its history).
"""

from __future__ import annotations

from typing import Any

from grafana_client import GrafanaApi


def push_all(
    url: str,
    token: str,
    dashboards: dict[str, dict[str, Any]],
    *,
    folder_uid: str | None = None,
    message: str = "pushed by tidewatch dashboards push",
    timeout: float = 30.0,
) -> list[str]:
    """Save every dashboard; returns the URL Grafana gives each one."""
    grafana = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    urls = []
    for dashboard in dashboards.values():
        body: dict[str, Any] = {
            "dashboard": {**dashboard, "id": None},
            "overwrite": True,
            "message": message,
        }
        if folder_uid is not None:
            body["folderUid"] = folder_uid
        answer = grafana.dashboard.update_dashboard(body)
        urls.append(str(answer.get("url", "")))
    return urls
