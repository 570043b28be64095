"""``[embed] images = "download"``: fetch the sample's images before CLIP sees them.

The built-in :class:`atlas.fetch.images.Downloader` always does it, while embedding, whether or not
the ``images`` extra (img2dataset) is installed. It resolves each host name itself, connects
only to public addresses (the address actually connected to is checked) and follows redirects
by hand, checking every hop. img2dataset fetches through ``urllib``, which connects to
whatever a name or a redirect points at (127.0.0.1, 10.x, 169.254.169.254 included), in
processes or cluster workers atlas cannot guard. So atlas never hands it URLs: a webdataset
folder you fetched with img2dataset yourself is read with ``images = "<folder>"``
(:class:`atlas.fetch.images.TarImages`).

URLs whose host is a literal loopback, private, link-local or reserved address are dropped
first, and every row's outcome is counted (:func:`fetch_summary`): fetched, refused by the
site's opt-out, dead links (the link rot of this build), refused addresses, other failures.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

OUTCOMES = ("fetched", "opt_out", "dead", "refused", "failed")
#: The reason of a row whose URL names a non-public address (the built-in downloader's wording).
REFUSED = "refused address"


def private_host(url: str | None) -> bool:
    """True when the URL's host is a literal non-public IP address (loopback, private,
    link-local such as 169.254.169.254, multicast, reserved, unspecified; IPv4-mapped IPv6
    included: :func:`atlas.fetch.images.address_refused`, with its test-only allow-list) or
    ``localhost``; hostnames are not resolved here."""
    from atlas.fetch import images

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
    """An image source that answers the rows already known to have failed (a refused address)
    with their reason and asks ``source`` for the rest."""

    def __init__(self, source, failures: dict[int, str]):
        self.source, self.failures = source, failures

    def fetch(self, items: list[tuple[int, str | None]]) -> list:
        from atlas.fetch.images import Fetched

        asked = [item for item in items if item[0] not in self.failures]
        answers = {f.row_id: f for f in (self.source.fetch(asked) if asked else [])}
        return [answers.get(row) or Fetched(row, error=self.failures[row]) for row, _ in items]


#: The one tool ``images = "download"`` uses (the name the fetch figures and the build summary give).
TOOL = "built-in downloader"


def img2dataset_available() -> bool:
    """Whether the ``images`` extra (img2dataset) is installed (found, not imported: it is slow);
    only for the build note saying it is not used to download."""
    import importlib.util

    return importlib.util.find_spec("img2dataset") is not None


def fetch_tool() -> str:
    """The tool ``images = "download"`` uses: always the built-in downloader, which checks every
    address and redirect (installing img2dataset no longer changes what is fetched)."""
    return TOOL


def fetch_images(table, config, folder: Path | None = None, image_size: int = 224,
                 reporter=None) -> tuple[str, dict[int, str], str]:
    """Prepare the sample's images for ``images = "download"``.

    Returns ``(images, failures, tool)``: ``download``, for :func:`atlas.fetch.images.open_images` to
    fetch with the built-in downloader while embedding; the rows already known to fail (URLs
    naming a literal non-public address) with their reason; and the tool's name. ``folder``
    and ``image_size`` are unused (img2dataset's tars once went there); they stay so callers
    need not change.
    """
    row_ids = table.column("row_id").to_pylist()
    urls = table.column("url").to_pylist()
    failures = {row: REFUSED for row, url in zip(row_ids, urls) if private_host(url)}
    if failures and reporter is not None:
        reporter.warn("images", f"{len(failures):,} image URL(s) name a loopback, private, link-local or reserved "
                      "address and were not fetched")
    if reporter is not None:
        if img2dataset_available():
            reporter.info("images: img2dataset is installed but does not download for atlas (it does not check the "
                          "address a name resolves to, nor redirects); the built-in downloader fetches the images. "
                          "A webdataset folder you fetched with img2dataset yourself is read with "
                          "[embed] images = \"<folder>\"")
        if config.distributor != "multiprocessing":
            reporter.warn("images", f"[embed] distributor = \"{config.distributor}\" has no effect: images = "
                          "\"download\" fetches on this machine with the built-in downloader. To fetch on a cluster, "
                          "run img2dataset there yourself and set [embed] images to the folder it wrote.")
    return "download", failures, TOOL


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
