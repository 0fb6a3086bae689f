"""The optional extras of the distribution, and the one message that says how to install one.

The base install runs every scenario, baseline and tabular learner. Rendering, plots and videos
need the ``render`` extra; the PPO learners need the ``train`` extra; ``mtenv bench --backend
ray`` needs the ``ray`` extra. A command that needs a
missing extra fails with one line naming the extra and the command that installs it, both from
PyPI and from a source checkout.
"""

from __future__ import annotations

DISTRIBUTION = "mtenv-alloc"

EXTRA_OF_MODULE: dict[str, str] = {
    "pygame": "render",
    "PIL": "render",
    "imageio": "render",
    "imageio_ffmpeg": "render",
    "matplotlib": "render",
    "stable_baselines3": "train",
    "sb3_contrib": "train",
    "tensorboard": "train",
    "ray": "ray",
}
"""Top-level module → the extra that installs it."""


def install_hint(extra: str) -> str:
    """How to install ``extra``: from PyPI, or from the root of a source checkout."""
    return f'pip install "{DISTRIBUTION}[{extra}]" (in a source checkout: pip install ".[{extra}]")'


def missing_extra_message(error: BaseException) -> str | None:
    """One line for an ``ImportError`` of a module that an extra installs, else ``None``.

    Follows ``__cause__`` so that wrapped errors (Gymnasium's ``DependencyNotInstalled``) are
    recognised too.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = getattr(current, "name", None) if isinstance(current, ImportError) else None
        extra = EXTRA_OF_MODULE.get((name or "").split(".")[0])
        if extra is not None:
            return f"{name} is not installed, and this needs the {extra!r} extra: " + install_hint(
                extra
            )
        current = current.__cause__
    return None
