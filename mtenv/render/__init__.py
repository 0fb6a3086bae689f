"""What people look at: the pygame viewer, videos of episodes and figures for papers.

* :mod:`~mtenv.render.viewer`: draws a simulator snapshot (``render_mode="rgb_array"`` or
  ``"human"``).
* :mod:`~mtenv.render.video`: writes frames as GIF or MP4.
* :mod:`~mtenv.render.plots`: figures from recorded runs and learning curves.
"""
