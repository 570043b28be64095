"""Remote shard failures read as one clear sentence: what happened and what to do."""

from __future__ import annotations

import duckdb
import pytest

from atlas.data.rows import _remote_error


@pytest.mark.parametrize(
    "text, says, hint",
    [
        ("HTTP Error: HTTP GET error on 'https://huggingface.co/x' (HTTP 401)", "refused access", "HF_TOKEN"),
        ("IO Error: No files found that match the pattern \"hf://datasets/a/b/*.parquet\"", "nothing was found",
         "hf://datasets/OWNER/NAME"),
        ("IO Error: Could not establish connection error for HTTP HEAD to 'https://x/y.parquet'", "network error",
         "ATLAS_HTTP_RETRIES"),
    ],
)
def test_remote_errors_say_what_happened_and_what_to_do(text, says, hint):
    error = _remote_error(duckdb.IOException(text))
    assert says in str(error) and hint in str(error)
    assert str(error).startswith("cannot read remote shards")

