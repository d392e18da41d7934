"""Diffusion and flow matching as pure functions: noise schedules (`schedules`) and samplers (`samplers`).

The network lives apart (`vidgen_tf.models.video_diffusion`) and the training
core in `vidgen_tf.denoising`, as diffusers keeps models, schedulers and
pipelines in rooms of their own. Nothing here imports a model.
"""

from vidgen_tf.diffusion import samplers, schedules  # noqa: F401
