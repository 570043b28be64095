"""The map's pure JavaScript modules (state, picking, colours, search) under Node's own test
runner: ``node --test tests/js/*.test.js`` (see README, Tests). Skips where Node is not installed;
``.ci/run`` installs it."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from helpers.paths import REPO



def test_map_modules_pass_their_node_tests():
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs); .ci/run installs it")
    # The files by name: Node 18 and 20 take a folder here, newer ones only files or globs.
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests" / "js").glob("*.test.js"))
    assert len(files) >= 4
    run = subprocess.run([node, "--test", *files], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout
