"""A timing line per stage, printed so a user sees progress during ``dbt build``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def stage(model: str, what: str) -> Iterator[None]:
    """Print ``[model] what: 1.23 s`` when the block ends."""
    started = time.perf_counter()
    yield
    print(f"[{model}] {what}: {time.perf_counter() - started:.2f} s", flush=True)
