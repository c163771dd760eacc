"""One JSON object per log line, for a hospital's log pipeline (``edgemed --log-json …`` or
``EDGEMED_LOG_FORMAT=json``): ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
``thread``, ``exc`` with the traceback when there is one, and any ``extra={...}`` fields.

Stdlib only (a formatter of twenty lines needs no dependency on devices). What edgemed logs
never holds patient identifiers or query strings: the fleet's access log prints method, route
and status only.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

__all__ = ["JsonFormatter"]

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)
