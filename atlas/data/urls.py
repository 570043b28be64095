"""One canonical form of an image URL, the way a browser reads it.

Every rule about URLs (opt-out lists by URL, host or domain; host and domain statistics; which
links are published) works on this form, so a rule holds however the URL is *written*: with
leading or trailing whitespace, tabs or newlines inside, a backslash or a single slash after the
scheme, a percent-encoded, full-width or upper-case host, a trailing dot, the default port, user
info or a fragment. The parsing is the WHATWG URL Standard's (what ``new URL()`` does in a
browser), done by Ada (``ada-url``: a spec-compliant parser, tested against the standard's test
suite), never by a regular expression of our own. On top of it atlas drops what a browser does
not need to find the same image: the fragment, user info and a trailing dot of the host.

- :func:`canonical` gives ``(link, host)`` of one value: ``link`` the canonical URL when it is an
  http(s) URL atlas may link (else None), ``host`` the host rules match on (lower case, IDNA
  ASCII form, no trailing dot, a leading ``www.`` dropped), also for URLs that are not linked
  (``ftp://host/x``, or ``host/x.jpg`` with no scheme, read as ``http://host/x.jpg``).
- :data:`FAST_SQL` recognises in DuckDB the URLs that are already canonical apart from a fragment
  (nearly all of LAION's), so the view ``rows`` computes the canonical form in SQL for them and
  calls :func:`canonical` (as the UDFs of :func:`register`) only for the rest. Tests check that
  both roads give the same answer on real and hostile URLs, and the host against Chromium's.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: Longer links are not published (a page is no place for a 4 kB address).
MAX_LINK = 4096

LINK_UDF = "atlas_url_link"
HOST_UDF = "atlas_url_host"
DECODE_UDF = "atlas_url_decode"


def _parse(text: str):
    import ada_url

    try:
        return ada_url.URL(text)
    except ValueError:
        return None


def _host_of(parsed) -> str | None:
    host = (parsed.hostname or "").lower()
    host = host.rstrip(".")
    if host.startswith("www.") and "." in host[4:]:
        host = host[4:]  # hosts are compared and counted without www.
    return host or None


def canonical(value: object) -> tuple[str | None, str | None]:
    """``(link, host)`` of a URL as a browser reads it (see the module docstring).

    ``link`` is None for anything that is not an http(s) URL after parsing, and for links longer
    than :data:`MAX_LINK`; ``host`` is None when nothing names a host.
    """
    if not isinstance(value, str) or not value:
        return None, None
    return _canonical(value)


@lru_cache(maxsize=1 << 16)
def _canonical(value: str) -> tuple[str | None, str | None]:
    parsed = _parse(value)
    if parsed is None:
        # No scheme (``host/x.jpg``, ``//host/x.jpg``): not linked, but matched on the host a
        # reader would take it for.
        guess = _parse("http://" + value.strip(" \t\n\r\f\v\0/\\"))
        host = _host_of(guess) if guess is not None else None
        return None, (host if host and "." in host else None)  # a bare word names no host
    host = _host_of(parsed)
    if parsed.protocol not in ("http:", "https:") or host is None:
        return None, host
    parsed.hash = ""
    parsed.username = ""
    parsed.password = ""
    if parsed.hostname.endswith("."):
        parsed.hostname = parsed.hostname.rstrip(".")
    link = parsed.href
    return (link if len(link) < MAX_LINK else None), host


def canonical_link(value: object) -> str | None:
    """The link atlas may publish for ``value`` (see :func:`canonical`), or None."""
    return canonical(value)[0]


def canonical_host(value: str) -> str | None:
    """The host of a host or domain written alone (``Example.COM.``, ``ｅｘａｍｐｌｅ.com``,
    ``%65xample.com``), in the form :func:`canonical` gives URLs' hosts; None if it is not one."""
    text = value.strip()
    if not text or any(ch in text for ch in "/?#@\\") or "://" in text:
        return None
    parsed = _parse("http://" + text + "/")
    return _host_of(parsed) if parsed is not None else None


_PSL = None


@lru_cache(maxsize=1 << 16)
def registrable_domain(host: str) -> str:
    """``i.pinimg.com`` -> ``pinimg.com``, ``foo.co.uk`` -> ``foo.co.uk``; IPs stay as they are."""
    global _PSL
    if _PSL is None:
        from publicsuffixlist import PublicSuffixList

        _PSL = PublicSuffixList(only_icann=True)  # bundled list: works offline; ICANN only so
        # that e.g. bucket.s3.amazonaws.com rolls up to amazonaws.com
    if not host:
        return host
    if re.fullmatch(r"[0-9.]+|\[.*\]", host):
        return host
    return _PSL.privatesuffix(host) or host


def safe_http_url(value: object) -> str | None:
    """The canonical link of ``value`` (:func:`canonical`) if it is an http(s) URL (the
    only kind ever linked), else None. What is linked is what the rules were checked on: the
    canonical form, never the text as written."""
    link = canonical_link(value)
    if link is None or not re.match(r"^https?://[^\s\"'<>\\`]+$", link):
        return None
    return link


# ------------------------------------------------------------------------------------------ SQL

#: A URL the WHATWG parser would leave as it is (but for a fragment): lower-case http(s), a
#: lower-case ASCII host without port or user info whose last label starts with a letter (so it
#: is no IPv4 address), a path, and a query, of characters no part of the URL percent-encodes.
#: (RE2 syntax; ``(?s)`` so a fragment may hold anything.) Dot segments, ``%2e``, ``xn--`` labels
#: and long URLs are excluded separately (:data:`FAST_SQL`).
_FAST = (
    r"(?s)https?://(?:[a-z0-9_-]+\.)*[a-z][a-z0-9_-]*"
    r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*"
    r"(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@/%?]*)?"
    r"(?:#.*)?"
)
_DOT_SEGMENT = r"/\.\.?(?:[/?#]|$)"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: SQL true where ``{col}`` is a URL whose canonical form :data:`FAST_LINK_SQL` computes. The
#: exclusions are ``contains`` tests (much cheaper than a regex); a dot segment's regex runs only
#: on the few URLs with ``/.`` in them.
FAST_SQL = (
    f"(strlen({{col}}) < {MAX_LINK} AND regexp_full_match({{col}}, {_literal(_FAST)}) "
    f"AND NOT (contains({{col}}, 'xn--') OR contains({{col}}, '%2e') OR contains({{col}}, '%2E') "
    f"OR (contains({{col}}, '/.') AND regexp_matches({{col}}, {_literal(_DOT_SEGMENT)}))))"
)
#: The canonical link of a URL :data:`FAST_SQL` accepts: the fragment dropped.
FAST_LINK_SQL = "CASE WHEN contains({col}, '#') THEN split_part({col}, '#', 1) ELSE {col} END"
#: The host of a URL of the fast kind (no port or user info, lower case, a ``/`` after the
#: host): the text between the second and third ``/``, ``www.`` dropped.
FAST_HOST_SQL = (
    "CASE WHEN starts_with(split_part({col}, '/', 3), 'www.') "
    "AND contains(substr(split_part({col}, '/', 3), 5), '.') "
    "THEN substr(split_part({col}, '/', 3), 5) ELSE split_part({col}, '/', 3) END"
)


def link_sql(col: str, fast: str) -> str:
    """SQL of the canonical link of ``col`` (``fast``: the SQL of :data:`FAST_SQL` for it)."""
    return (f"CASE WHEN {col} IS NULL THEN NULL WHEN {fast} THEN {FAST_LINK_SQL.format(col=col)} "
            f"ELSE {LINK_UDF}({col}) END")


def host_sql(col: str, fast: str) -> str:
    """SQL of the canonical host of ``col`` (``fast``: the SQL of :data:`FAST_SQL` for it)."""
    return (f"CASE WHEN {col} IS NULL THEN NULL WHEN {fast} THEN {FAST_HOST_SQL.format(col=col)} "
            f"ELSE {HOST_UDF}({col}) END")


#: The text of ``{col}`` percent-decoded, where decoding spells letters or digits (``p%6Frn``, a
#: full-width word's UTF-8 bytes), else NULL: what the blocklist reads besides the URL as written,
#: so a word a reader sees in the address bar is found. DuckDB's ``url_decode`` fails on invalid
#: UTF-8; those few go to Python (``errors="replace"``), so a stray ``%FF`` cannot hide a word.
DECODED_SQL = (
    "CASE WHEN contains({col}, '%') AND regexp_matches({col}, '%(?:3[0-9]|[4-7][0-9A-Fa-f]|[C-Fc-f][0-9A-Fa-f])') "
    f"THEN coalesce(try(url_decode({{col}})), {DECODE_UDF}({{col}})) END"
)


def _decode(value: str | None) -> str | None:
    import urllib.parse

    return None if value is None else urllib.parse.unquote(value, errors="replace")


def _link(value: str | None) -> str | None:
    return canonical(value)[0]


def _host(value: str | None) -> str | None:
    return canonical(value)[1]


def register(con) -> None:
    """Register :func:`canonical`'s two halves as DuckDB functions on ``con`` (once per connection)."""
    import duckdb
    from duckdb.sqltypes import VARCHAR

    # Plain Python functions, not Arrow ones: DuckDB imports pandas (0.3 s) for its first Arrow
    # UDF call, and only the few URLs the SQL fast road leaves reach these.
    for name, function in ((LINK_UDF, _link), (HOST_UDF, _host), (DECODE_UDF, _decode)):
        try:
            con.create_function(name, function, [VARCHAR], VARCHAR,
                                type="native", null_handling="special", side_effects=False)
        except duckdb.Error as error:  # already registered on this connection
            if "already" not in str(error).lower():
                raise
