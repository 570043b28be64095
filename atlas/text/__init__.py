"""Text rules shared by every stage that matches words: the one fold and tokeniser
(:mod:`atlas.text.fold`) and its use inside DuckDB (:mod:`atlas.text.sql`)."""
