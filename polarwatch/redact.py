"""What of a URL or an environment may leave the process: logs, error messages, pages and child
processes see a webhook's host, never its path or query (where tokens live), and children get
the environment without credentials."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

# Variable names that hold credentials: ours (POLARWATCH_ALERTS_SECRET, ..._LLM_API_KEY,
# ..._MASTODON_TOKEN) and the usual ones of other tools (AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN,
# PGPASSWORD, OPENAI_API_KEY, ...).
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSW|API_?KEY|CREDENTIAL|PRIVATE_?KEY|SESSION|AUTH"
                         r"|^AWS_ACCESS_KEY_ID$|_PAT$", re.IGNORECASE)


def host_only(url: object) -> object:
    """``scheme://host[:port]`` of a URL: no user, password, path or query (where webhook
    secrets live). Values that are not URLs are returned unchanged."""
    if not isinstance(url, str) or "://" not in url:
        return url
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}" if host else "(invalid URL)"


def url_for_log(url: str) -> str:
    """A URL as logs and errors show it: its host, plus ``/…`` when a path or query was cut."""
    shown = str(host_only(url))
    return shown + "/…" if shown != url.rstrip("/") and shown != "(invalid URL)" else shown


def scrubbed_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (this process's environment) without the variables that hold credentials: for
    the processes polarwatch starts that need none (the broker, its S3 server, the dashboard,
    the pruner)."""
    env = os.environ if base is None else base
    return {k: v for k, v in env.items() if not SECRET_NAME.search(k)}
