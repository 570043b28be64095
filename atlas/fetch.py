"""``[embed] images = "download"``: fetch the sample's images before CLIP sees them.

With the optional extra (``pip install ".[images]"``) the field's tool does it: img2dataset
fetches the URLs, resizes them for CLIP and writes webdataset tars into the build cache (which
:class:`atlas.images.TarImages` reads), honouring its default opt-outs (``X-Robots-Tag: noai``,
``noimageai``, ``noindex``, ``noimageindex``), spread by ``[embed] distributor``
(multiprocessing on this machine; Ray or pyspark on a cluster). Without the extra, the built-in
:class:`atlas.images.Downloader` fetches them while embedding.

Either way URLs whose host is a literal loopback, private, link-local or reserved address are
dropped first, and every row's outcome is counted (:func:`fetch_summary`): fetched, refused by
the site's opt-out, dead links (the link rot of this build), refused addresses, other failures.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

#: img2dataset rows per output shard (one tar + one parquet of per-row outcomes each).
SHARD_ROWS = 10_000

OUTCOMES = ("fetched", "opt_out", "dead", "refused", "failed")
#: The reason of a row whose URL names a non-public address (the built-in downloader's wording).
REFUSED = "refused address"


def private_host(url: str | None) -> bool:
    """True when the URL's host is a literal non-public IP address (loopback, private,
    link-local such as 169.254.169.254, multicast, reserved, unspecified; IPv4-mapped IPv6
    included: :func:`atlas.images.address_refused`, with its test-only allow-list) or
    ``localhost``; hostnames are not resolved here."""
    from atlas import images

    host = (urlsplit(url).hostname or "") if isinstance(url, str) else ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a name, not an address
    return images.address_refused(host, images.ALLOW_NETWORKS_FOR_TESTS)


def outcome(reason: str | None) -> str:
    """The summary class of one row's fetch: ``fetched`` (no reason), ``opt_out``, ``dead``
    (the page or host is gone: HTTP 404/410 and other 4xx but 429, unknown host, refused
    connection), ``refused`` (a non-public address) or ``failed`` (timeouts, 5xx, undecodable
    or oversized images: the image may still exist)."""
    if reason is None:
        return "fetched"
    text = reason.lower()
    if "x-robots-tag" in text or "opt-out" in text or "noai" in text:
        return "opt_out"
    if text == REFUSED or "non-public" in text or "private" in text:
        return "refused"
    for code in ("http error ", "http "):
        if text.startswith(code) and text[len(code):len(code) + 3].isdigit():
            status = int(text[len(code):len(code) + 3])
            return "dead" if 400 <= status < 500 and status != 429 else "failed"
    dead = ("name or service not known", "nodename nor servname", "no address associated",
            "temporary failure in name resolution", "getaddrinfo", "connection refused", "connection failed")
    return "dead" if any(marker in text for marker in dead) else "failed"


def fetch_summary(images: dict, tool: str, distributor: str | None = None) -> dict:
    """The fetch figures of an image summary (``{"embedded", "reasons"}`` as the embed stage
    counts them): rows fetched and embedded, refused by opt-out, dead links, refused addresses
    and other failures, with the tool that fetched them and the link-rot share (dead links over
    the rows whose fetch was attempted)."""
    counts = dict.fromkeys(OUTCOMES, 0)
    counts["fetched"] = int(images.get("embedded", 0))
    for reason, count in (images.get("reasons") or {}).items():
        kind = outcome(reason)
        counts["failed" if kind == "fetched" else kind] += int(count)
    requested = sum(counts.values())
    attempted = requested - counts["refused"]
    return {"tool": tool, "distributor": distributor, "requested": requested, **counts,
            "link_rot": round(counts["dead"] / attempted, 4) if attempted else None}


class KnownFailures:
    """An image source that answers the rows already known to have failed (a refused address,
    img2dataset's reason) with their reason and asks ``source`` for the rest."""

    def __init__(self, source, failures: dict[int, str]):
        self.source, self.failures = source, failures

    def fetch(self, items: list[tuple[int, str | None]]) -> list:
        from atlas.images import Fetched

        asked = [item for item in items if item[0] not in self.failures]
        answers = {f.row_id: f for f in (self.source.fetch(asked) if asked else [])}
        return [answers.get(row) or Fetched(row, error=self.failures[row]) for row, _ in items]


def img2dataset_available() -> bool:
    """Whether the ``images`` extra (img2dataset) is installed (found, not imported: it is slow)."""
    import importlib.util

    return importlib.util.find_spec("img2dataset") is not None


def fetch_tool() -> str:
    """The tool ``images = "download"`` uses here: ``img2dataset`` or ``built-in downloader``."""
    return "img2dataset" if img2dataset_available() else "built-in downloader"


def fetch_images(table, config, folder: Path, image_size: int = 224, reporter=None) -> tuple[str, dict[int, str], str]:
    """Fetch the sample's images for ``images = "download"``.

    Returns ``(images, failures, tool)``: what :func:`atlas.images.open_images` should read (a
    folder of webdataset tars written by img2dataset, or ``download`` for the built-in
    downloader, which fetches while embedding), the rows already known to have failed with
    their reasons (refused addresses; img2dataset's failures), and the tool's name.
    """
    import pyarrow as pa

    row_ids = table.column("row_id").to_pylist()
    urls = table.column("url").to_pylist()
    failures = {row: REFUSED for row, url in zip(row_ids, urls) if private_host(url)}
    if failures and reporter is not None:
        reporter.warn("images", f"{len(failures):,} image URL(s) name a loopback, private, link-local or reserved "
                      "address and were not fetched")
    tool = fetch_tool()
    if tool != "img2dataset":
        if reporter is not None:
            reporter.info("images: img2dataset is not installed (pip install \".[images]\"), so the built-in "
                          "downloader fetches the images")
        return "download", failures, tool

    keep = [i for i, row in enumerate(row_ids) if row not in failures]
    wanted = pa.table({"url": pa.array([urls[i] if isinstance(urls[i], str) else "" for i in keep], pa.string()),
                       "row_id": pa.array([row_ids[i] for i in keep], pa.int64())})
    digest = hashlib.sha256()
    for url in wanted.column("url").to_pylist():
        digest.update(f"{url}\n".encode())
    digest.update(f"{image_size}".encode())
    out = Path(folder) / digest.hexdigest()[:24]
    reasons = _run_img2dataset(wanted, out, config, image_size) if wanted.num_rows else {}
    (out / "shards").mkdir(parents=True, exist_ok=True)
    for i in keep:
        reason = reasons.get(urls[i], "missing from img2dataset's output")
        if reason is not None:
            failures[row_ids[i]] = reason
    return str(out / "shards"), failures, tool


def _run_img2dataset(wanted, out: Path, config, image_size: int) -> dict[str, str | None]:
    """Run img2dataset over ``wanted`` (url, row_id) into ``out`` (kept between builds: finished
    shards are not fetched again) and return each URL's failure reason (None when fetched)."""
    import contextlib
    import io

    import pyarrow.parquet as pq

    from atlas.errors import ConfigError

    try:
        from img2dataset import download
    except ImportError as error:
        raise ConfigError(f"img2dataset is installed but cannot be imported ({error})", where="[embed] images",
                          hint="Reinstall the extra with `pip install \".[images]\"`, or uninstall img2dataset "
                          "to use the built-in downloader.") from None

    out.mkdir(parents=True, exist_ok=True)
    url_list = out / "urls.parquet"
    pq.write_table(wanted, url_list)
    log_buffer = io.StringIO()
    with contextlib.redirect_stdout(log_buffer):  # img2dataset prints its progress
        download(
            url_list=str(url_list),
            input_format="parquet",
            url_col="url",
            save_additional_columns=["row_id"],
            output_format="webdataset",
            output_folder=str(out / "shards"),
            image_size=image_size,
            resize_mode="keep_ratio",  # shortest side to CLIP's size; CLIP's preprocessing crops the centre
            resize_only_if_bigger=True,
            encode_format="jpg",
            number_sample_per_shard=SHARD_ROWS,
            processes_count=1 if config.distributor == "multiprocessing" else 16,
            thread_count=16,
            timeout=10,
            retries=1,
            distributor=config.distributor,
            enable_wandb=False,
            extract_exif=False,
            compute_hash=None,
            incremental_mode="incremental",
        )
    log.debug("img2dataset: %s", log_buffer.getvalue()[-2000:])
    reasons: dict[str, str | None] = {}
    for shard in sorted((out / "shards").glob("*.parquet")):
        rows = pq.read_table(shard, columns=["url", "status", "error_message"]).to_pylist()
        for row in rows:
            reasons[row["url"]] = None if row["status"] == "success" else (row["error_message"] or row["status"])
    return reasons


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "0%"


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def reader_sentence(summary: dict | None) -> str | None:
    """The fetch figures in a reader's words, for the map page (None when nothing was fetched)."""
    if not summary or not summary.get("requested"):
        return None
    requested = summary["requested"]
    attempted = requested - summary.get("refused", 0)
    parts = [f"Of the {requested:,} images behind these points, {summary.get('fetched', 0):,} could be downloaded "
             "and are placed by what they show"]
    if summary.get("dead"):
        parts.append(f"{_count(summary['dead'], 'link no longer works', 'links no longer work')} "
                     f"({_share(summary['dead'], attempted)} of those tried: the web forgets)")
    if summary.get("opt_out"):
        n = summary["opt_out"]
        parts.append(f"{n:,} " + ("image was left alone because its site asks AI tools not to use it" if n == 1 else
                                  "images were left alone because their sites ask AI tools not to use them"))
    if summary.get("refused"):
        parts.append(_count(summary["refused"], "link points into a private network and was not followed",
                            "links point into private networks and were not followed"))
    if summary.get("failed"):
        parts.append(f"{_count(summary['failed'], 'image', 'images')} could not be read in time or were not images")
    return "; ".join(parts) + ". Points without an image are placed by their caption."


def summary_line(summary: dict | None) -> str | None:
    """The fetch figures for the build summary, naming the tool (None when nothing was fetched)."""
    if not summary:
        return None
    tool = summary.get("tool") or "downloader"
    if summary.get("distributor"):
        tool += f" ({summary['distributor']})"
    rot = summary.get("link_rot")
    return (f"images fetched by {tool}: {summary.get('fetched', 0):,} of {summary.get('requested', 0):,}, "
            f"{summary.get('opt_out', 0):,} refused by opt-out (X-Robots-Tag), {summary.get('dead', 0):,} dead links"
            f" (link rot {'n/a' if rot is None else f'{100 * rot:.1f}%'}), {summary.get('refused', 0):,} private "
            f"addresses dropped, {summary.get('failed', 0):,} other failures")
