"""Reading LAION shards: where they are (:mod:`.sources`), the DuckDB view over them
(:mod:`.rows`), what may be shown of them (:mod:`.policy`) and the one canonical form of their
URLs (:mod:`.urls`). Nothing here loads a shard into Python."""
