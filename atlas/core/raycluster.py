"""Ray for the stages that run with ``engine = "ray"``: connect to the cluster named by
``RAY_ADDRESS`` (:attr:`atlas.core.settings.Settings.ray_address`), or start a small local Ray for the
build and shut it down afterwards.

Ray is an optional extra (``pip install ".[ray]"``); it is imported here, inside the functions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from atlas.core.errors import ConfigError
from atlas.core.settings import Settings

log = logging.getLogger(__name__)

#: CPUs of a local Ray started for one build (the stages size their actor pools from the cluster).
LOCAL_CPUS = 2


def import_ray(where: str):
    """The ``ray`` module with Ray Data, or a ConfigError naming the key that asked for it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data]; plain ray lacks it)
    except ImportError as error:
        raise ConfigError(
            f"engine = \"ray\" needs Ray Data, which cannot be imported ({error})",
            where=where,
            hint="Install the extra with `pip install \".[ray]\"` (or `pip install \"ray[data]\"`), "
            "or set engine = \"local\".",
        ) from None
    return ray


@contextmanager
def ray_session(settings: Settings, where: str) -> Iterator[object]:
    """Yield the ``ray`` module connected to a cluster.

    An already initialised Ray (a driver running inside a Ray job) is used as it is; otherwise
    ``RAY_ADDRESS`` is joined, or a local Ray with :data:`LOCAL_CPUS` CPUs is started. Only what
    this function started is shut down when the block ends.
    """
    ray = import_ray(where)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset progress lines in the build log
    if ray.is_initialized():
        yield ray
        return
    options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        if settings.ray_address:
            ray.init(address=settings.ray_address, **options)
        else:
            ray.init(num_cpus=LOCAL_CPUS, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        target = f"the Ray cluster at RAY_ADDRESS={settings.ray_address}" if settings.ray_address else "a local Ray"
        raise ConfigError(
            f"cannot start or reach {target}: {str(error).splitlines()[0][:300]}",
            where=where,
            hint="Check RAY_ADDRESS (e.g. ray://head:10001 or auto), or unset it for a local Ray, "
            "or set engine = \"local\".",
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def gpu_count(ray) -> int:
    """Whole GPUs the connected cluster offers (0 on a CPU cluster)."""
    return int(ray.cluster_resources().get("GPU", 0))
