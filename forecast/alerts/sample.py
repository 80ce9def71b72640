"""``polarwatch alerts test``: a signed sample alert to one URL, logged in ``alert_deliveries``
when ``[warehouse] path`` is a warehouse (:func:`send_sample_alert`)."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

from forecast.alerts.delivery import retry_for
from forecast.alerts.webhooks import DeliveryResult, Endpoint, WebhookSender, sample_alert
from polarwatch.config import Config
from polarwatch.ddl import TABLES
from polarwatch.errors import PolarwatchError, WarehouseUnreadable
from polarwatch.fields import WebhookFormat
from polarwatch.warehouse import connect

LOG = logging.getLogger(__name__)

# What --secret-env may echo: a conventional variable name. A signing key pasted by mistake has
# lower-case letters (base64) or the whsec_ prefix, so it is never shown.
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


def sample_secret(cfg: Config, secret_env: str | None) -> str | None:
    """The signing secret of ``alerts test``: the value of the environment variable *named*
    ``secret_env`` (a secret is never an argument: every user of the machine can read them),
    else ``[alerts] secret``; None: unsigned. Errors never repeat ``secret_env`` unless it
    looks like a variable name (upper case, digits, _): it may be the secret itself."""
    if not secret_env:
        return cfg.alerts.secret.get_secret_value() or None
    example = ("export PW_HOOK_SECRET='whsec_…' and pass --secret-env PW_HOOK_SECRET")
    if secret_env.startswith("whsec_") or not secret_env.isidentifier():
        raise PolarwatchError("--secret-env takes the name of an environment variable "
                              "(letters, digits, _), not a secret (the value is not shown): "
                              + example)
    if not os.environ.get(secret_env):
        shown = (secret_env if ENV_NAME.fullmatch(secret_env) else
                 f"(a name of {len(secret_env)} characters, not shown: it has lower-case "
                 f"letters and may be the secret itself)")
        raise PolarwatchError(f"--secret-env {shown}: that variable is not set or is empty; "
                              + example)
    return os.environ[secret_env]


def send_sample_alert(cfg: Config, url: str, secret: str | None, *, format: WebhookFormat | None = None,
                      attempts: int = 3, log: bool = True) -> list[DeliveryResult]:
    """Send :func:`forecast.alerts.webhooks.sample_alert` to ``url`` (``format`` default
    ``[alerts] format``) with the config's timeout and backoff, ``attempts`` times at most;
    logged in ``alert_deliveries`` when ``log`` and ``[warehouse] path`` is a warehouse. A file
    that is not one is refused (nothing is sent); a missing one is not created: the test is
    sent and not logged, and the log line says so."""
    endpoint = Endpoint(url, secret=secret, format=format or cfg.alerts.format)
    db = log_path(cfg.warehouse_path) if log else None
    sender = WebhookSender([endpoint], db_path=db, fail_fast=False,
                           retry=dataclasses.replace(retry_for(cfg), max_attempts=attempts))
    return sender.send(sample_alert(), dedupe=False)


def log_path(path: Path) -> Path | None:
    """``path`` when it is a polarwatch warehouse (one of its tables at least; an older one is
    upgraded by the sender), None with a warning when it does not exist. Another program's
    DuckDB file, or a file DuckDB cannot open, raises :class:`WarehouseUnreadable`."""
    if not path.exists():
        LOG.warning(f"alerts test: {path} does not exist, so this test is not logged in "
                    f"alert_deliveries (no warehouse is created for it): set [warehouse] path "
                    f"(env POLARWATCH_WAREHOUSE_PATH) to the file the stream writes, or pass "
                    f"--no-log")
        return None
    with connect(path, read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if tables & set(TABLES):
        return path
    shown = ", ".join(sorted(tables)[:5]) + (f" and {len(tables) - 5} more"
                                               if len(tables) > 5 else "")
    raise WarehouseUnreadable(
        f"{path} is a DuckDB database but not a polarwatch warehouse ("
        + (f"its tables are {shown}" if tables else "it holds no tables")
        + "), so alerts test does not log to it: set [warehouse] path (env "
          "POLARWATCH_WAREHOUSE_PATH) to the file the stream writes, or pass --no-log")
