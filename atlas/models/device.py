"""Which torch device a model runs on: the one rule for CLIP (embed) and Stable Diffusion (generate)."""

from __future__ import annotations

from atlas.core.errors import ModelError


def resolve_device(preference: str = "auto", mps: bool = True, where: str = "[embed] device") -> str:
    """``"auto"``: CUDA when available, else Apple's MPS (when ``mps`` allows it), else the CPU;
    an explicit ``"cuda"`` without a CUDA device is a :class:`ModelError` naming ``where``."""
    import torch

    if preference == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if mps and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if preference == "cuda" and not torch.cuda.is_available():
        raise ModelError(
            f"{where} is \"cuda\" but no CUDA device is available",
            where=where,
            hint="Set device = \"auto\" or \"cpu\", or install a CUDA build of torch.",
        )
    return preference
