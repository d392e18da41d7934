"""hmm with `feature_dim`: gradient training only on a fitted PCA projection.

(Beside tests/test_hmm.py while another change moves the HMM's EM code; the
test can join that file afterwards.)
"""

import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf

SMALL = dict(num_frames=5, height=4, width=4, channels=1, num_states=2, feature_dim=3)


def clips(seed=0):
    videos = np.random.default_rng(seed).uniform(-1, 1, (8, 5, 4, 4, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices(videos).batch(4), videos


def test_gradient_fit_refuses_an_unfitted_projection_and_names_the_fix():
    model = vidgen_tf.build("hmm", **SMALL)
    model.compile(seed=0, jit_compile=False)  # XLA compiles for seconds here
    data, videos = clips()
    with pytest.raises(ValueError, match=r"feature_dim=3 has no fitted PCA projection: call fit_projection\(videos\) "
                                         r"\(or fit_em\(videos\), which fits it\)"):
        model.fit(data, epochs=1, verbose=0)
    assert int(model.noise_step.numpy()) == 0  # no step was taken

    model.fit_projection(videos)
    history = model.fit(data, epochs=1, verbose=0).history
    assert np.isfinite(history["nll"][0])
    assert int(model.noise_step.numpy()) == 2


def test_gradient_fit_after_em_and_without_feature_dim_runs():
    data, videos = clips(1)
    em = vidgen_tf.build("hmm", **SMALL)
    em.fit_em(videos, iterations=2)
    em.compile(seed=0, jit_compile=False)
    assert np.isfinite(em.fit(data, epochs=1, verbose=0).history["nll"][0])
    plain = vidgen_tf.build("hmm", **{**SMALL, "feature_dim": None})
    plain.compile(seed=0, jit_compile=False)
    assert np.isfinite(plain.fit(data, epochs=1, verbose=0).history["nll"][0])
