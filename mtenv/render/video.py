"""Writing rendered frames to a video file (GIF with Pillow, MP4 with imageio's ffmpeg).

The file appears only when it is complete: frames go to a temporary file in the same folder,
which is renamed into place at the end, so a failed or interrupted recording leaves nothing
half-written behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtenv.extras import install_hint

VIDEO_SUFFIXES = (".gif", ".mp4")


class VideoError(ValueError):
    """A video that cannot be written; the message names the file and what is wrong."""


def check_video_path(path: str | Path) -> Path:
    """``path`` if its suffix is a supported format and its folder exists."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"{path}: expected a file ending in {' or '.join(VIDEO_SUFFIXES)}")
    if not path.parent.is_dir():
        raise VideoError(f"{path}: the folder {str(path.parent)!r} does not exist")
    return path


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write (H, W, 3) uint8 frames to ``path`` (.gif or .mp4) at ``fps`` frames per second."""
    path = check_video_path(path)
    if not frames:
        raise VideoError(f"{path}: no frames to write")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if path.suffix.lower() == ".gif":
            _write_gif(frames, tmp, fps)
        else:
            _write_mp4(frames, tmp, fps)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def _write_gif(frames: Sequence[np.ndarray], path: Path, fps: float) -> None:
    try:
        from PIL import Image
    except ImportError:
        raise VideoError(f"{path}: GIF needs Pillow: {install_hint('render')}") from None
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
    )


def _write_mp4(frames: Sequence[np.ndarray], path: Path, fps: float) -> None:
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise VideoError(
            f"{path}: MP4 needs imageio and imageio-ffmpeg: {install_hint('render')}"
        ) from None
    # macro_block_size=1 keeps odd frame sizes as they are instead of resizing with a warning.
    with imageio.get_writer(path, format="FFMPEG", fps=fps, macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(np.asarray(frame, dtype=np.uint8))
