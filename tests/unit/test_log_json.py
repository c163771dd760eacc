"""``edgemed --log-json`` (or EDGEMED_LOG_FORMAT=json): one parseable JSON object per line."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from edgemed.log_json import JsonFormatter


def test_each_record_is_one_json_object_with_extras_and_tracebacks() -> None:
    formatter = JsonFormatter()
    record = logging.makeLogRecord(
        {"name": "edgemed.fleet.ingest", "levelno": logging.WARNING, "levelname": "WARNING",
         "msg": "link lost (%s)", "args": ("rc 7",), "device_id": "bed-7"}
    )  # fmt: skip
    line = json.loads(formatter.format(record))
    assert line["message"] == "link lost (rc 7)" and line["level"] == "WARNING"
    assert line["logger"] == "edgemed.fleet.ingest" and line["device_id"] == "bed-7"
    assert line["ts"].endswith("+00:00")
    try:
        raise RuntimeError("multi\nline")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    text = formatter.format(record)
    assert "\n" not in text and "RuntimeError" in json.loads(text)["exc"]


def test_the_cli_switches_to_json_lines_from_the_environment() -> None:
    code = (
        "import logging, sys; from edgemed.cli import main; "
        "sys.argv = ['edgemed', 'models', 'list']; main(['models', 'list']); "
        "logging.getLogger('edgemed.check').warning('hello')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "EDGEMED_LOG_FORMAT": "json"}, timeout=120)  # fmt: skip
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines and lines[-1]["message"] == "hello", proc.stderr
