"""Every signature a model's exports have, gathered from the modules that describe them.

`description` describes the signatures of every GAN and likelihood model (`serving_default`,
`generate`, the `log_prob` pair), `streaming` the chunked ones (`initial_state`,
`generate_chunk`), `diffusion` a diffusion model's five; this module, above the three, picks a
model's, so none of them imports another's caller.
"""

from vidgen_tf.exporting import description, diffusion, streaming


def signature_descriptions(model):
    """Signature name -> `{doc, inputs, outputs}` of every signature `export_savedmodel` writes."""
    if diffusion.is_diffusion(model):  # sample, generate, denoise, step
        return diffusion.signature_descriptions(model)
    signatures = description.base_signature_descriptions(model)
    signatures.update(streaming.streaming_description(model))  # initial_state, generate_chunk
    return signatures


def describe_model(model, preset=None, signatures=None, limits=None):
    """The description of `model`'s exports: `description.describe_model` with every signature the
    model's exports have (`signature_descriptions`); the arguments are that function's."""
    return description.describe_model(model, signature_descriptions(model), preset=preset, signatures=signatures,
                                      limits=limits)
