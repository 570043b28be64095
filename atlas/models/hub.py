"""The one lookup of a Hugging Face hub model: the local Hugging Face cache first; a download only
when the caller asks for one and it can work (not ``HF_HUB_OFFLINE``, the hub reachable).

The caption model (:mod:`atlas.models.captionmodel`) only ever looks in the cache; ``atlas
generate`` (:mod:`atlas.commands.generate`) may download a Stable Diffusion model. The environment
(``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, ``HF_TOKEN``) comes in as :class:`atlas.core.settings.Settings`.
"""

from __future__ import annotations

from pathlib import Path

from atlas.core.errors import ModelError
from atlas.core.settings import Settings


def _cached(repo_id: str) -> Path | None:
    """The cache's snapshot of ``repo_id`` at ``main``, or None.

    Without a ``refs/main`` in the cache, ``snapshot_download(local_files_only=True)`` fails
    anyway: then it is not imported (that costs a no-change build ~0.2 s of imports).
    """
    try:
        from huggingface_hub import constants

        if not (Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / "main").is_file():
            return None
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError and relatives), or no huggingface_hub
        return None


def reachable(endpoint: str, seconds: float = 5.0) -> bool:
    """Can we open a connection to ``endpoint``'s host and port within ``seconds`` (DNS included)?"""
    import socket
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    try:
        host, port = parts.hostname or "", parts.port or (80 if parts.scheme == "http" else 443)
    except ValueError:  # a port that is not a number
        return False
    result = []

    def attempt():
        try:
            socket.create_connection((host, port), timeout=seconds).close()
            result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(seconds)
    return bool(result)


def find_model(repo_id: str, settings: Settings | None = None, *, download: bool = False,
               allow_patterns: list[str] | None = None, where: str | None = None, hint: str | None = None) -> Path | None:
    """The local snapshot folder of hub model ``repo_id`` (its name is the commit).

    From the Hugging Face cache; else None, or with ``download`` fetched (only ``allow_patterns``)
    from ``settings.hf_endpoint`` with ``settings.hf_token``. A download that cannot be made
    (``HF_HUB_OFFLINE``, the hub unreachable, huggingface_hub missing, the download failing) is a
    ModelError naming ``where`` with ``hint``.
    """
    found = _cached(repo_id)
    if found is not None or not download:
        return found
    settings = settings or Settings()
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers and sentence-transformers
        raise ModelError("huggingface_hub is not installed, so a hub id cannot be resolved", hint=hint) from None
    cannot = f"no folder {repo_id!r} exists, and as a Hugging Face hub id it cannot be fetched: "
    if settings.hf_offline:
        raise ModelError(cannot + "HF_HUB_OFFLINE is set and it is not in the local Hugging Face cache",
                         where=where, hint=hint)
    if not reachable(settings.hf_endpoint):
        raise ModelError(cannot + "the hub cannot be reached from this machine and the model is not in the local cache",
                         where=where, hint=hint)
    try:
        return Path(snapshot_download(repo_id, allow_patterns=allow_patterns, endpoint=settings.hf_endpoint,
                                      token=settings.hf_token))
    except Exception as error:
        raise ModelError(f"cannot download {repo_id!r}: {error}", where=where, hint=hint) from None
