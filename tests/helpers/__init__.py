"""What the tests share, one module a job (tests import them: ``from helpers.content import write_shard``).

- ``paths``: the repository, the real data in ``../shared`` and the ``needs_*`` skip markers.
- ``content``: parquet shards and content folders written in code; hostile rows.
- ``builds``: a quiet build, copies of the session build's content, a real BuildContext.
- ``clip``: the tiny random-weight CLIP the open_clip paths run with.
- ``browser``: Debian's Chromium, a local server, synthetic map sites.
- ``meaning_vectors``: synthetic caption-like embeddings for search by meaning (tests and a benchmark).

The fixtures (``shared``, ``shared_data``, ``tiny_clip``, ``chromium``) are in ``tests/conftest.py``.
"""
