"""The one exception type of the model zoo.

It lives in its own module so that every zoo module can raise it without import cycles.
"""

from __future__ import annotations

__all__ = ["ZooError"]


class ZooError(ValueError):
    """A bad model name, a missing or damaged weights file, or an unusable device.

    The message always names what was wrong (the file, the tensor, the name) and what was
    expected, so it can be shown to a user as is.
    """
