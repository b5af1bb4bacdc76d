"""Progress of long loops: library code wraps them in ``track``; only a command turns the bars on (tqdm, stderr).

Library code never prints, so ``track`` hands the iterable back untouched unless ``enable_bars`` was called
(``streamer.cli.main`` does, for every command). Bars draw only when stderr is a terminal: logs, pipes and CI
output stay clean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

_factory: Callable[..., Any] | None = None


def track(iterable: Iterable[T], *, desc: str, total: int | None = None, unit: str = "record") -> Iterable[T]:
    """``iterable`` itself, or wrapped in a progress bar when a command enabled them."""
    if _factory is None:
        return iterable
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    return _factory(iterable, desc=desc, total=total, unit=unit)  # type: ignore[no-any-return]


def enable_bars(enabled: bool = True) -> None:
    """Draw a tqdm bar on stderr for every ``track`` (when stderr is a terminal); ``False`` turns them off."""
    global _factory
    if not enabled:
        _factory = None
        return

    def bar(iterable: Iterable[Any], **kwargs: Any) -> Any:
        import sys

        from tqdm import tqdm

        # disable=None: no bar when stderr is not a terminal; leave=False: the command's own output follows
        return tqdm(iterable, file=sys.stderr, disable=None, leave=False, dynamic_ncols=True, **kwargs)

    _factory = bar
