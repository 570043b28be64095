"""The canonical URL form (atlas.data.urls): every way of writing an opted-out host or URL is caught,
SQL's fast road and Python's parser agree, and the host is the one Chromium's ``new URL()`` finds."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atlas.data import urls
from atlas.core.config import DataConfig
from atlas.data.policy import Policy, load_policy
from atlas.data.rows import Rows, connect, open_rows, open_shard
from atlas.data.sources import resolve_sources
from atlas.data.urls import safe_http_url
from atlas.core.errors import ContentError
from atlas.stages.stats import compute_stats, run_stats, shard_partials

from helpers.paths import SAMPLE_10K

#: Every way the hostile review wrote a URL on the opted-out host ``optout-host.com``.
OPTED_OUT_FORMS = [
    "https://optout-host.com./x.jpg",  # trailing dot
    " https://optout-host.com/x.jpg",  # leading space
    "\thttps://optout-host.com/x.jpg",  # leading tab
    "https://optout-host.com/x.jpg\n",  # trailing newline
    "https://opt\tout-host.com/x.jpg",  # a tab inside (browsers drop it)
    "https://%6Fptout-host.com/x.jpg",  # percent-encoded host
    "https://optout-host.com%2e/x.jpg",  # percent-encoded trailing dot
    "https://ｏｐｔｏｕｔ-host.com/x.jpg",  # full-width (IDNA maps it)
    "https://optout-host.com\\x.jpg",  # backslash
    "https:/optout-host.com/x.jpg",  # one slash
    "https:optout-host.com/x.jpg",  # no slash
    "HTTPS://OPTOUT-HOST.COM:443/x.jpg",  # upper case, default port
    "https://user:pass@optout-host.com/x.jpg",  # user info
    "https://img.optout-host.com/x.jpg",  # a subdomain
    "https://www.optout-host.com/x.jpg",
    "http://optout-host.com:80/x.jpg#frag",
    "ftp://optout-host.com/x.jpg",  # not linked, still that host
    "optout-host.com/x.jpg",  # no scheme: not linked, still that host
    "//optout-host.com/x.jpg",
]
#: The same image URL as the opt-out list's ``https://fine.example/optout.jpg``.
SAME_IMAGE_FORMS = [
    "https://fine.example/optout.jpg#fragment",
    "https://fine.example/optout.jpg ",
    "https://FINE.example/optout.jpg",
    "https://fine.example:443/optout.jpg",
    "https://fine.example./optout.jpg",
    "https://fine.example/a/../optout.jpg",
    "https://fine.example/%2e/optout.jpg",
]


@pytest.mark.parametrize("url", OPTED_OUT_FORMS)
def test_every_written_form_has_the_canonical_host(url):
    assert urls.canonical(url)[1] == ("img.optout-host.com" if "img." in url else "optout-host.com")


@pytest.mark.parametrize("url", SAME_IMAGE_FORMS)
def test_the_same_image_has_one_canonical_link(url):
    assert urls.canonical(url)[0] == "https://fine.example/optout.jpg"


def test_what_is_not_an_http_url_is_not_linked():
    for url in ("javascript:alert(1)", "data:text/html,<b>x</b>", "ftp://a.example/x", "a.example/x.jpg",
                "https://", "https:// /x", "", None, 17, "https://a.example/" + "x" * 5000):
        assert urls.canonical_link(url) is None and safe_http_url(url) is None, url


def _hostile_shard(folder: Path) -> Path:
    rows = [(url, f"tokhost{i} a caption", f"h{i}") for i, url in enumerate(OPTED_OUT_FORMS)]
    rows += [(url, f"tokimage{i} a caption", f"i{i}") for i, url in enumerate(SAME_IMAGE_FORMS)]
    rows += [("https://fine.example/kept.jpg", "tokkept0 a caption", " HashOpt "),  # hash opt-out, spaced
             ("https://fine.example/kept.jpg", "tokkept1 a caption", "kept")]
    path = folder / "hostile.parquet"
    pq.write_table(pa.table({"URL": [r[0] for r in rows], "TEXT": [r[1] for r in rows],
                             "hash": [r[2] for r in rows]}), path)
    return path


def _content(folder: Path) -> DataConfig:
    (folder / "optout.txt").write_text(
        "ＯＰＴＯＵＴ-host.com.\n"  # the list itself written oddly: full-width, trailing dot
        "HTTPS://Fine.Example:443/optout.jpg#top\n"
        "hash: hashopt \n", encoding="utf-8")
    return DataConfig(exclude=["optout.txt"], unscored="keyword-filter")


def test_opt_out_lists_hold_however_the_url_is_written(tmp_path):
    shard = _hostile_shard(tmp_path)
    config = _content(tmp_path)
    policy = load_policy(config, tmp_path)
    assert policy.exclusions[0].hosts == ("optout-host.com",)
    assert policy.exclusions[0].urls == ("https://fine.example/optout.jpg",)
    assert policy.exclusions[0].hashes == ("hashopt",)
    rows = open_rows(resolve_sources([str(shard)], tmp_path), config, policy=policy)
    left = {caption for (caption,) in rows.con.execute("SELECT caption FROM rows").fetchall()}
    assert left == {"tokkept1 a caption"}, sorted(left)
    stats, examples = compute_stats(rows, config)
    assert stats["rows"] == 1
    assert [h["host"] for h in stats["hosts"]] == ["fine.example"]
    assert stats["safety"]["excluded_rows"] == {"optout.txt": len(OPTED_OUT_FORMS) + len(SAME_IMAGE_FORMS) + 1}
    assert [e["url"] for e in examples["captions"]] == ["https://fine.example/kept.jpg"]


def test_published_links_are_the_canonical_form(tmp_path):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"URL": [" HTTPS://WWW.Fine.Example:443/a b.jpg#x", "https://u:p@fine.example./c.jpg"],
                             "TEXT": ["one", "two"]}), path)
    config = DataConfig(unscored="keyword-filter")
    rows = open_rows(resolve_sources([str(path)], tmp_path), config, policy=load_policy(config, None))
    got = dict(rows.con.execute("SELECT caption, url FROM rows").fetchall())
    assert got == {"one": "https://www.fine.example/a%20b.jpg", "two": "https://fine.example/c.jpg"}
    hosts = dict(rows.con.execute("SELECT caption, host FROM rows").fetchall())
    assert hosts == {"one": "fine.example", "two": "fine.example"}


def test_an_opt_out_url_that_no_browser_opens_is_an_error(tmp_path):
    (tmp_path / "optout.txt").write_text("javascript://alert(1)\n", encoding="utf-8")
    with pytest.raises(ContentError, match="line 1 .* not an http"):
        load_policy(DataConfig(exclude=["optout.txt"]), tmp_path)


def _sql_canonical(values: list[str | None]) -> list[tuple]:
    """(link, host) of each value as the view ``rows`` computes them (fast road or UDF)."""
    con = connect()
    con.register("t", pa.table({"u": pa.array(values, pa.string()), "i": list(range(len(values)))}))
    fast = urls.FAST_SQL.format(col="u")
    found = con.execute(
        f"SELECT i, l, {urls.host_sql('u', 'f')}, f FROM (SELECT *, {urls.link_sql('u', 'f')} AS l "
        f"FROM (SELECT *, {fast} AS f FROM t)) ORDER BY i").fetchall()
    con.close()
    return [(link, host, fast) for _, link, host, fast in found]


def test_sql_fast_road_agrees_with_the_parser_on_real_urls(shared_data):
    values = pq.read_table(shared_data / SAMPLE_10K, columns=["URL"]).column(0).to_pylist()
    got = _sql_canonical(values)
    fast = sum(1 for *_, f in got if f)
    assert fast > 0.95 * len(values)  # nearly every real URL takes the SQL road
    wrong = [(v, g[:2], urls.canonical(v)) for v, g in zip(values, got) if g[:2] != urls.canonical(v)]
    assert not wrong, wrong[:5]


_URL_PARTS = st.sampled_from([
    "https://", "http://", "HTTPS://", "https:/", "https:", " ", "\t", "\n", "//", "www.", "WWW.", "a", "B", "-", "_",
    ".", "..", "/", "\\", "%2e", "%2E", "%41", "%", "xn--", "ｏ", "é", "ß", "@", ":", ":443", ":80", ":8080", "?", "#",
    "'", "\"", "<", "^", "|", "[", "]", "{", "~", "=", "&", "1", "0x7f", "com", "example", "\u200b", "\u00ad", " ",
])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_URL_PARTS, min_size=1, max_size=12).map("".join), min_size=1, max_size=40))
def test_sql_and_python_give_the_same_canonical_form(values):
    got = _sql_canonical(values)
    assert [g[:2] for g in got] == [urls.canonical(v) for v in values]


def test_every_entry_that_opens_rows_needs_a_policy(tmp_path):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"URL": ["https://a.example/x.jpg"], "TEXT": ["x"]}), path)
    sources = resolve_sources([str(path)], tmp_path)
    config = DataConfig()
    with pytest.raises(TypeError):
        open_rows(sources, config)  # noqa - the point: no default
    with pytest.raises(TypeError):
        open_rows(sources, config, policy=None)
    with pytest.raises(TypeError):
        open_shard(sources[0], {"url": "URL", "caption": "TEXT"})
    with pytest.raises(TypeError):
        Rows(connect(), {}, sources, [])
    with pytest.raises(TypeError):
        Rows(connect(), {}, sources, [], None, None)
    with pytest.raises(TypeError):
        run_stats(sources, config, tmp_path, None)
    with pytest.raises(TypeError):
        shard_partials(sources[0], {"url": "URL"}, config, [], None)
    # With one, each works, and the threshold comes from the policy alone.
    policy = Policy(threshold=0.25, unscored="keyword-filter", blocklist=("x",))
    rows = open_shard(sources[0], {"url": "URL", "caption": "TEXT"}, policy=policy)
    assert rows.policy is policy
    stats, _ = compute_stats(rows, DataConfig(unsafe_threshold=0.9))
    assert stats["safety"]["threshold"] == 0.25


#: Odd URLs for the browser comparison: the forms above and more of what crawls hold.
BROWSER_CORPUS = OPTED_OUT_FORMS + SAME_IMAGE_FORMS + [
    "https://EXAMPLE.com/", "https://a..b.example/", "https://1.2.3/", "https://0x7f.1/x", "https://[::1]:443/",
    "https://[0:0::1]/", "https://xn--nxasmq6b.example/", "https://ÉCOLE.example/", "https://bücher.example/",
    "https://faß.example/", "https://%e2%80%8bzero.example/", "https://a\u00adb.example/", "https://ａ.example/",
    "https://a.example:0443/", "https://a.example:/", "https://@a.example/", "https://a:b:c@d.example/",
    "http://a.example/%zz", "https://a.example/?q='x'", "https://a.example/[x]^|{}", "https://a_b.example/",
    "https://-a.example/", "https://a.example..", "HTTP://A.EXAMPLE", "https://a.example/\u00e9?\u00e9#\u00e9",
    "https://\u0430.example/", "https://i.pinimg.com/736x/0f/1e/aa.jpg", "https://a.example/./b/../c",
]


@pytest.mark.browser
def test_hosts_agree_with_chromium(chromium):
    page = chromium.new_page()
    page.set_content("<!doctype html><title>urls</title>")
    theirs = page.evaluate("""(list) => list.map((u) => {
        try { const p = new URL(u); return [p.protocol, p.hostname, p.href]; } catch (e) { return null; }
    })""", BROWSER_CORPUS)
    page.close()
    host_disagreements, href_disagreements = [], []
    for url, parsed in zip(BROWSER_CORPUS, theirs):
        link, host = urls.canonical(url)
        if parsed is None:
            # Chromium cannot parse it either: atlas must not link it (a guessed host is allowed).
            if link is not None:
                host_disagreements.append((url, "linked", link))
            continue
        protocol, hostname, href = parsed
        expected = hostname.lower().rstrip(".")
        expected = expected[4:] if expected.startswith("www.") and "." in expected[4:] else expected
        if (host or "") != expected:
            host_disagreements.append((url, host, hostname))
        if protocol in ("http:", "https:") and link is not None:
            browser_link = href.split("#")[0]
            if browser_link != link:
                href_disagreements.append((url, link, browser_link))
    print(f"\n{len(BROWSER_CORPUS)} URLs; host disagreements: {len(host_disagreements)}; "
          f"link disagreements (user info and a host's trailing dot are dropped on purpose): {len(href_disagreements)}")
    for item in href_disagreements:
        print("  link:", json.dumps(item, ensure_ascii=False))
    assert not host_disagreements, host_disagreements


def test_webdataset_images_match_rows_by_the_canonical_url(tmp_path):
    """img2dataset stores each image's URL as the shard wrote it; rows carry its canonical form."""
    import io
    import tarfile

    from atlas.fetch.images import TarImages

    tar_path = tmp_path / "00000.tar"
    with tarfile.open(tar_path, "w") as tar:
        for stem, url, data in (("0", " HTTPS://Fine.Example:443/a b.jpg#x", b"first"),
                                ("1", "https://fine.example/plain.jpg", b"second")):
            for name, body in ((f"{stem}.jpg", data), (f"{stem}.json", json.dumps({"url": url}).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    images = TarImages([tar_path])
    got = images.fetch([(7, "https://fine.example/a%20b.jpg"), (8, "https://fine.example/plain.jpg"),
                        (9, "https://fine.example/other.jpg")])
    assert [(f.row_id, f.data, f.error) for f in got] == [(7, b"first", None), (8, b"second", None), (9, None, "missing")]
