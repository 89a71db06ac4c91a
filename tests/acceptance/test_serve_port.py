"""``signoff serve --port 0``: a free port, named in the line that says it serves."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path


def test_port_zero_serves_on_a_free_port_and_says_which(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "signoff", "serve", "--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            found = re.search(r"serving on (http://127\.0\.0\.1:(\d+)) \(store: ", line)
            assert found is not None, line
            assert int(found.group(2)) > 0
            # the line is printed once the socket listens: asked at once, the server answers
            with urllib.request.urlopen(found.group(1) + "/healthz", timeout=30) as reply:
                assert reply.status == 200
        finally:
            process.terminate()
            process.wait(timeout=30)
