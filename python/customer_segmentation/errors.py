"""The package's one error base class.

Every error that bad data or settings can cause subclasses `SegmentationError`; its message
says which file, var or value and what to do. A dbt Python model turns a SegmentationError into
one line (``[model] ERROR: ...``, see `models.clear_errors`); any other exception is a bug and
keeps its full traceback. Each subclass also derives from the built-in exception it replaced
(ValueError, RuntimeError), so code that caught those still does.
"""

from __future__ import annotations


class SegmentationError(Exception):
    """Bad input or settings: expected, and explained by the message."""
