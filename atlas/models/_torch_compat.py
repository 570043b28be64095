"""Import open_clip (and sentence-transformers) on machines whose torchvision build cannot load its compiled operators.

Some environments pair a CPU build of torch with a torchvision wheel built for another torch
(e.g. a CUDA build). torchvision's compiled extension then fails to load, and because
``torchvision/_meta_registrations.py`` registers fake kernels for ``torchvision::nms`` and
``torchvision::qnms`` at import time, ``import torchvision`` dies with
``RuntimeError: operator torchvision::nms does not exist`` -- which takes ``import open_clip``
down with it, although open_clip only needs torchvision's pure-Python transforms.

The workaround, applied only when that exact failure happens: declare the two operator schemas
(identical to the ones torchvision's C++ code registers) with ``torch.library.define`` so the
meta registrations find them, and import again. No kernels are provided: calling ``nms`` would
still fail, which is fine because nothing in atlas uses detection ops.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)

#: The operators torchvision's meta registrations look up at import time, in the order they fail.
_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

_patched = False


def _has_op(name: str) -> bool:
    import torch

    try:
        getattr(torch.ops.torchvision, name)
        return True
    except (AttributeError, RuntimeError):
        return False


def _forget_torchvision() -> None:
    """Drop half-imported torchvision modules so the next import starts clean."""
    for module in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[module]


def import_torchvision():
    """``import torchvision``, declaring the missing operator schemas only if its ops failed to load."""
    global _patched
    try:
        import torchvision

        return torchvision
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
        first_error = error
    import torch

    _forget_torchvision()
    defined = []
    for name, schema in _SCHEMAS.items():
        if not _has_op(name):
            torch.library.define(f"torchvision::{name}", schema)
            defined.append(name)
    _patched = True
    log.info(
        "torchvision's compiled operators did not load (%s); declared schemas for %s so its "
        "pure-Python parts import",
        str(first_error).splitlines()[0],
        ", ".join(defined) or "nothing",
    )
    import torchvision

    return torchvision


def import_open_clip():
    """Return the ``open_clip`` module, working around a broken torchvision build if needed."""
    if "open_clip" in sys.modules:
        return sys.modules["open_clip"]
    import_torchvision()
    import open_clip

    return open_clip


def import_sentence_transformers():
    """Return ``sentence_transformers`` (transformers imports torchvision too, so the same workaround)."""
    if "sentence_transformers" in sys.modules:
        return sys.modules["sentence_transformers"]
    try:
        import_torchvision()
    except ImportError:  # no torchvision at all: transformers does without it
        pass
    import sentence_transformers

    return sentence_transformers


def patched() -> bool:
    """True when the torchvision workaround was applied in this process."""
    return _patched
