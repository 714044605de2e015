"""Keep secrets out of logs, records, the audit trail and error messages.

Every secret a service loads (provider API keys, the password of a Postgres
DSN) is registered here; `redact()` replaces each occurrence with `***` and
the logging filter does the same for every record that reaches a handler.
Upstream error bodies (a provider that echoes the key it was given) pass
through `redact()` before they are logged, recorded or returned.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit

from pydantic import SecretStr

_lock = threading.Lock()
_secrets: set[str] = set()
MASK = "***"


def register(secret: SecretStr | str | None) -> None:
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def register_dsn(dsn: SecretStr | str | None) -> None:
    """A DSN's password (URL `user:pw@` or libpq `password=pw`)."""
    value = dsn.get_secret_value() if isinstance(dsn, SecretStr) else dsn
    if not value:
        return
    if "://" in value:
        pw = urlsplit(value).password
        if pw:
            register(pw)
    for m in re.finditer(r"password\s*=\s*('([^']*)'|\S+)", value):
        register(m.group(2) if m.group(2) is not None else m.group(1))


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, MASK)
    # Bearer tokens in echoed headers, whatever their value.
    return re.sub(r"(?i)(authorization:\s*bearer\s+)\S+", r"\1" + MASK, text)


_installed = False


def install_log_filter() -> None:
    """Redact every log record at creation (a record factory), so that every
    handler, present or added later (journald, pytest's caplog), sees clean text."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
