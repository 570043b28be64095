"""``atlas serve``: build, serve the site on localhost, rebuild on changes, reload the browser.

Like ``mkdocs serve``: the site is built into a temporary folder with the same cached stages as
``atlas build`` (so a page edit re-runs only rendering), served by a small threaded HTTP server,
and rebuilt when a file of the content folder or the theme changes (watchfiles). Every HTML
response gets a ``<script src>`` of ``livereload.js`` (beside this module), which polls
``/__atlas__/version`` and reloads the page after a rebuild, or shows the build error; the script
is added while serving, never written to the site.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import http.server
import json
import logging
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from atlas.core.errors import AtlasError
from atlas.core.report import Reporter
from atlas.core.settings import Settings

log = logging.getLogger(__name__)

VERSION_PATH = "/__atlas__/version"

#: The live-reload script (a file of the package), served at RELOAD_PATH.
RELOAD_SCRIPT = Path(__file__).with_name("livereload.js")
RELOAD_PATH = "/__atlas__/livereload.js"


def inject_reload(html: str, version: int) -> str:
    """The page with a ``<script src>`` of the live-reload script before ``</body>`` (or at the end)."""
    script = f'<script src="{RELOAD_PATH}" data-version="{int(version)}"></script>\n'
    index = html.lower().rfind("</body>")
    return html + script if index < 0 else html[:index] + script + html[index:]


#: Errors that only say the client went away mid-request (closed the tab, reset, timed out):
#: nothing is wrong with the server, so they are not worth more than a debug line.
_HANGUPS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)
_HANGUP_ERRNOS = {errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED, errno.ESHUTDOWN, errno.ENOTCONN}


def _is_hangup(error: BaseException | None) -> bool:
    """True when ``error`` means the client hung up (or stalled), not that serving failed."""
    return isinstance(error, _HANGUPS) or (isinstance(error, OSError) and error.errno in _HANGUP_ERRNOS)


class _Server(http.server.ThreadingHTTPServer):
    """The stdlib's threaded server with a listen backlog that holds a burst of connections.

    The stdlib default (5) made a page with many assets, or 200 clients at once, wait for SYN
    retries and sometimes time out. One daemon thread per connection: a request is a file read,
    the site is served to the person editing it on loopback by default, and threads that a
    stalled client holds end with the handler's timeout. Errors are logged through ``logging``
    instead of a traceback on stderr: a client hanging up is a debug line, anything else one
    error line (its traceback at debug level).
    """

    request_queue_size = 1024
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if _is_hangup(error):
            log.debug("%s hung up: %s", client_address[0], error)
            return
        log.error("error while serving %s: %s: %s", client_address[0], type(error).__name__, error)
        log.debug("the error's traceback", exc_info=True)


class _Handler(http.server.SimpleHTTPRequestHandler):
    server_state: "SiteServer"
    # The map's ES modules need a JavaScript type whatever the system's mime.types says.
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".json": "application/json",
        ".bin": "application/octet-stream",
        ".webp": "image/webp",
    }
    #: Seconds a connection may sit idle (reading the request, or a client not reading the
    #: answer) before its thread gives up, so stalled clients cannot pile up threads.
    timeout = 60

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _html(self, status: int, path: Path) -> None:
        html = path.read_text(encoding="utf-8", errors="replace")
        body = inject_reload(html, self.server_state.version).encode("utf-8")
        self._send(status, body, "text/html; charset=utf-8")

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        state = self.server_state
        url_path = self.path.split("?", 1)[0].split("#", 1)[0]
        if url_path == VERSION_PATH:
            body = json.dumps({"version": state.version, "error": state.error}).encode("utf-8")
            self._send(200, body, "application/json")
            return
        if url_path == RELOAD_PATH:
            self._send(200, RELOAD_SCRIPT.read_bytes(), "text/javascript; charset=utf-8")
            return
        translated = self.translate_path(self.path)
        if "\x00" in translated:  # a NUL byte (%00) in the path: no file has that name
            self.send_error(400, "Bad request path")
            return
        path = Path(translated)
        if path.is_dir() and url_path.endswith("/"):
            path = path / "index.html"
        if path.is_file() and path.suffix == ".html":
            self._html(200, path)
            return
        if not path.exists() and (state.out / "404.html").is_file():
            self._html(404, state.out / "404.html")  # as GitHub Pages does
            return
        if self.command == "HEAD":
            super().do_HEAD()
        else:
            super().do_GET()


class SiteServer:
    """A built site served on ``host:port`` and rebuilt on changes; ``start()`` then ``stop()``."""

    def __init__(
        self,
        content_dir: Path,
        host: str = "127.0.0.1",
        port: int = 8000,
        data: list[str] | None = None,
        cache_dir: Path | None = None,
        reporter: Reporter | None = None,
        settings: Settings | None = None,
    ):
        self.content_dir = Path(content_dir)
        #: The environment, read once (by the CLI, or here).
        self.settings = settings or Settings.from_env()
        self.host = host
        self.port = port
        self.data = data
        self.cache_dir = cache_dir
        self.reporter = reporter or Reporter()
        try:
            with _signals_deferred():  # a stop signal right now must not strand the folder
                self._tmp = Path(tempfile.mkdtemp(prefix="atlas-serve-"))
        except KeyboardInterrupt:  # delivered as the signals are let through again
            if hasattr(self, "_tmp"):
                shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        self.out = self._tmp / "site"
        #: Bumped after every rebuild; the pages poll it.
        self.version = 0
        #: The last rebuild's error message, shown over the page; None when it succeeded.
        self.error: str | None = None
        self.builds = 0
        self._stop = threading.Event()
        self._watching = threading.Event()
        self._threads: list[threading.Thread] = []
        self._httpd: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def build(self) -> None:
        """Build the site into the temporary folder (raises AtlasError)."""
        from atlas.build import build

        started = time.perf_counter()
        report = build(self.content_dir, self.out, self.data, self.cache_dir, self.reporter, settings=self.settings)
        self.builds += 1
        ran = [r.name for r in report.results if r.status in ("ran", "artifact")]
        self.reporter.info(
            f"built in {time.perf_counter() - started:.1f}s ({', '.join(ran) or 'nothing'} re-ran) · {self.url}"
        )

    def rebuild(self) -> None:
        """Rebuild after a change; a failure is shown in the browser and the old site stays."""
        try:
            self.build()
            self.error = None
        except AtlasError as error:
            self.error = f"{error.title}: {error}"
            self.reporter.warn("serve", f"rebuild failed: {self.error}")
        except Exception as error:  # a bug in a stage: keep serving, show it  # noqa: BLE001
            log.exception("rebuild crashed")
            self.error = f"{type(error).__name__}: {error}"
        self.version += 1

    def watched(self) -> list[Path]:
        """The content folder and the theme folders (a fork's and the built-in one)."""
        from atlas.core.config import load_config
        from atlas.site.theme import theme_dirs

        try:
            theme = load_config(self.content_dir).site.theme
        except AtlasError:
            theme = "default"
        paths = [self.content_dir] + theme_dirs(self.content_dir, theme)
        forks = self.content_dir.parent / "themes"
        if forks.is_dir():
            paths.append(forks)
        return list(dict.fromkeys(p.resolve() for p in paths if p.is_dir()))

    def _watch(self) -> None:
        import watchfiles

        # yield_on_timeout: an empty set every rust_timeout ms, which tells start() the watcher is up.
        from atlas.build import default_cache_dir

        cache = Path(self.cache_dir or default_cache_dir(self.settings)).resolve()
        ignore = watchfiles.DefaultFilter(ignore_paths=[str(cache), str(self._tmp.resolve())])
        for changes in watchfiles.watch(
            *self.watched(), watch_filter=ignore, stop_event=self._stop, debounce=200, rust_timeout=300,
            yield_on_timeout=True,
        ):
            self._watching.set()
            if self._stop.is_set():
                break
            if not changes:
                continue
            names = sorted({Path(p).name for _, p in changes})
            self.reporter.info(f"changed: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}; rebuilding")
            self.rebuild()

    def start(self) -> "SiteServer":
        """Listen (a busy port fails at once), build once (raises on failure), then serve and
        watch in background threads."""
        handler = type("Handler", (_Handler,), {"server_state": self})
        handler_factory = functools.partial(handler, directory=str(self.out))
        try:
            self._httpd = _Server((self.host, self.port), handler_factory)
        except (OSError, OverflowError) as error:  # OverflowError: a port outside 0-65535
            self.close()
            raise AtlasError(
                f"cannot listen on {self.host}:{self.port}: {getattr(error, 'strerror', None) or error}",
                hint="Another program may use that port; pass --port with another number (or 0 for any free port).",
            ) from None
        self.port = self._httpd.server_address[1]
        try:
            self.build()
        except BaseException:
            self._httpd.server_close()
            self.close()
            raise
        try:
            for target in (self._httpd.serve_forever, self._watch):
                thread = threading.Thread(target=target, name=f"atlas-serve-{target.__name__}", daemon=True)
                thread.start()
                self._threads.append(thread)
            self._watching.wait(timeout=10)  # so that an edit right after start() is seen
        except BaseException:  # e.g. stopped (SIGTERM, Ctrl-C) while starting: remove the folder
            if self._threads:
                self.stop()
            else:
                self._httpd.server_close()
                self.close()
            raise
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            if self._threads:  # shutdown() waits for serve_forever, which runs only once started
                self._httpd.shutdown()
            self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self.close()

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "SiteServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(
    content_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    data: list[str] | None = None,
    cache_dir: Path | None = None,
    reporter: Reporter | None = None,
    settings: Settings | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C, or SIGTERM/SIGHUP); the temporary site is removed either way."""
    reporter = reporter or Reporter()
    previous = {sig: signal.signal(sig, _interrupt) for sig in _STOP_SIGNALS}
    server = None
    try:
        server = SiteServer(content_dir, host, port, data, cache_dir, reporter, settings)
        server.start()
        reporter.info(f"serving {content_dir} at {server.url} (rebuilds on changes; Ctrl-C to stop)")
        if host not in ("127.0.0.1", "localhost", "::1"):
            reporter.warn("serve", f"listening on {host}: other machines on the network can read the site")
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        reporter.info("stopping")
    finally:
        if server is not None:
            server.stop()  # removes the temporary site (again harmless when start() already did)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


#: Signals that stop ``atlas serve`` cleanly (as Ctrl-C does).
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP) if hasattr(signal, "SIGHUP") else (signal.SIGTERM,)


@contextlib.contextmanager
def _signals_deferred():
    """Hold back Ctrl-C and the stop signals (delivered when the block ends), where possible."""
    signals = {signal.SIGINT, *_STOP_SIGNALS}
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _interrupt(signum, frame) -> None:
    """Turn a stop signal into KeyboardInterrupt in the main thread, so cleanup runs."""
    raise KeyboardInterrupt
