"""Streaming generation: chunks of any length equal one long `generate` call, in Keras,
through the SavedModel's `generate_chunk` and through ONNX; memory bounded by the chunk."""

import itertools
import json

import numpy as np
import pytest
import tensorflow as tf

import vidgen_tf
from vidgen_tf.base import frame_noise
from vidgen_tf.exporting import streaming, to_uint8_video

STREAMING = {
    "mocogan": dict(num_frames=4, height=16, width=16, channels=1, content_dim=4, motion_dim=2,
                    generator_width=4, discriminator_width=4),
    "mocogan_conditional": dict(num_frames=4, height=16, width=16, channels=1, content_dim=4, motion_dim=2,
                                generator_width=4, discriminator_width=4, num_classes=3),
    "dvdgan": dict(num_frames=4, height=16, width=16, channels=1, latent_dim=4, frame_noise_dim=2,
                   spatial_frames=2, generator_width=4, discriminator_width=4),
    "dvdgan_conditional": dict(num_frames=4, height=16, width=16, channels=1, latent_dim=4, frame_noise_dim=2,
                               spatial_frames=2, generator_width=4, discriminator_width=4, num_classes=3,
                               label_dim=2),
    "dcgan": dict(num_frames=4, height=8, width=8, channels=1, latent_dim=4, generator_width=4,
                  discriminator_width=4),
    "dcgan_conditional": dict(num_frames=4, height=8, width=8, channels=1, latent_dim=4, generator_width=4,
                              discriminator_width=4, num_classes=3, label_dim=2),
    "hmm": dict(num_frames=4, height=8, width=8, num_states=3),
    "hmm_bernoulli": dict(num_frames=4, height=8, width=8, num_states=3, emission="bernoulli"),
    "kvae": dict(num_frames=4, height=8, width=8, base_filters=4, dynamics_units=4),
    "kvae_fixed_dynamics": dict(num_frames=4, height=8, width=8, base_filters=4, num_dynamics=1),
}
FIXED_LENGTH = {
    "tgan": dict(num_frames=4, height=16, width=16, channels=1, latent_dim=8, frame_code_dim=6,
                 generator_width=8, temporal_width=16, discriminator_width=8),
    "vgan": dict(num_frames=4, height=16, width=16, channels=1, latent_dim=4, generator_width=4,
                 discriminator_width=4),
    "video_vae": dict(num_frames=4, height=8, width=8, channels=1, latent_dim=4, base_filters=4),
}
TOTAL = 7  # frames of the long call: more than num_frames, a prime (no chunk size but 1 and 7 divides it)
SEED = 5


def build(key, configs=STREAMING):
    model = vidgen_tf.build(key.split("_")[0] if key != "video_vae" else key, **configs[key])
    if model.registered_name == "hmm":
        # A chain whose next state depends on the last (the default's uniform rows would not):
        # mostly 0 -> 1 -> 2 -> 0.
        rng = np.random.default_rng(0)
        transition = np.full((3, 3), 0.05) + 0.85 * np.roll(np.eye(3), 1, axis=1)
        emission = dict(means=rng.uniform(-1, 1, (3, 64)), scales=np.full((3, 64), 0.1))
        if model.emission == "bernoulli":
            emission = dict(probs=rng.uniform(0.05, 0.95, (3, 64)))
        model.set_parameters([0.8, 0.1, 0.1], transition, **emission)
    return model


def labels_of(model):
    return np.array([0, 2], np.int32) if model.num_classes else None


def joined(chunks):
    return np.concatenate([np.asarray(chunk) for chunk in chunks], axis=1)


# ------------------------------------------------------------------ the noise
@pytest.mark.parametrize("distribution", ["normal", "uniform"])
def test_frame_noise_of_a_slice_equals_the_slice_of_a_long_draw(distribution):
    seed = tf.constant([3, 1], tf.int64)
    long = frame_noise(seed, 2, 9, [3], distribution=distribution).numpy()
    assert long.shape == (2, 9, 3)
    part = frame_noise(seed, 2, 4, [3], start_frame=5, distribution=distribution).numpy()
    np.testing.assert_array_equal(part, long[:, 5:9])
    # Frames differ from each other (each has its own fold of the seed).
    assert not np.allclose(long[:, 0], long[:, 1])


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
@pytest.mark.parametrize("event_shape", [(), (3,)])
def test_a_frame_count_known_in_the_graph_draws_without_a_loop_and_the_loop_s_values(distribution, event_shape):
    seed = tf.constant([11, 12], tf.int64)

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
    def run_time_count(num_frames, start):  # the count known only when run: the map_fn loop
        return frame_noise(seed, 5, num_frames, event_shape, start, distribution)

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def built_count(start):
        return frame_noise(seed, 5, 7, event_shape, start, distribution)

    looped = run_time_count(tf.constant(7), tf.constant(4)).numpy()
    unrolled = built_count(tf.constant(4)).numpy()
    assert unrolled.shape == (5, 7, *event_shape)
    np.testing.assert_array_equal(unrolled, looped)  # bit for bit: the presets' samples stay the same
    ops = {op.type for op in built_count.get_concrete_function().graph.get_operations()}
    assert not ops & {"While", "StatelessWhile"}, sorted(ops)
    loop_ops = {op.type for op in run_time_count.get_concrete_function().graph.get_operations()}
    assert loop_ops & {"While", "StatelessWhile"}
    assert frame_noise(seed, 5, 0, event_shape).shape == (5, 0, *event_shape)


@pytest.mark.parametrize("key", sorted(STREAMING))
def test_sample_noise_of_later_frames_is_the_slice_of_a_long_draw(key):
    model = build(key)
    seed = tf.constant([SEED, 1], tf.int64)
    long = model.sample_noise(2, seed, num_frames=TOTAL)
    part = model.sample_noise(2, seed, num_frames=3, start_frame=4)
    for name, value in long.items():
        if name in model.frame_noise_names:
            np.testing.assert_array_equal(part[name].numpy(), value.numpy()[:, 4:7])
        else:  # per-clip noise does not depend on the frames drawn
            np.testing.assert_array_equal(part[name].numpy(), value.numpy())


# ------------------------------------------------------------------ Keras
@pytest.mark.parametrize("key", sorted(STREAMING))
def test_stream_equals_one_long_generate_call_for_every_chunk_size(key):
    model = build(key)
    labels = labels_of(model)
    expected = model.generate(2, seed=SEED, num_frames=TOTAL, labels=labels).numpy()
    for chunk_frames in (1, 3, TOTAL, TOTAL + 2):
        chunks = list(model.generate_stream(2, seed=SEED, chunk_frames=chunk_frames, num_frames=TOTAL, labels=labels))
        sizes = [chunk.shape[1] for chunk in chunks]
        assert sizes == [chunk_frames] * (TOTAL // chunk_frames) + ([TOTAL % chunk_frames] if TOTAL % chunk_frames else [])
        assert all(chunk.dtype == tf.float32 and chunk.shape[2:] == expected.shape[2:] for chunk in chunks)
        np.testing.assert_allclose(joined(chunks), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("key", ["mocogan", "hmm", "kvae", "dvdgan", "dcgan"])
def test_an_endless_stream_goes_on_past_any_one_call(key):
    model = build(key)
    stream = model.generate_stream(2, seed=SEED, chunk_frames=model.num_frames, num_frames=None)
    chunks = list(itertools.islice(stream, 3))
    assert [c.shape[1] for c in chunks] == [model.num_frames] * 3
    expected = model.generate(2, seed=SEED, num_frames=3 * model.num_frames).numpy()
    np.testing.assert_allclose(joined(chunks), expected, atol=1e-6, rtol=0)
    assert next(stream).shape[1] == model.num_frames  # and more


def test_chunk_functions_are_pure_functions_of_state_and_noise():
    model = build("kvae")
    noise = model.sample_noise(2, tf.constant([SEED, 1], tf.int64), num_frames=3)
    state = model.initial_state(2, noise)
    first, next_state = model.generate_chunk(state, {k: noise[k] for k in model.frame_noise_names})
    again, again_state = model.generate_chunk(state, {k: noise[k] for k in model.frame_noise_names})
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert set(next_state) == {"latent_state", "started", "lstm_hidden", "lstm_cell"}
    assert next_state["started"].numpy().tolist() == [1.0, 1.0] and state["started"].numpy().tolist() == [0.0, 0.0]


@pytest.mark.parametrize("key", ["mocogan_conditional", "dcgan_conditional", "dvdgan_conditional"])
def test_conditional_streams_follow_their_labels(key):
    model = build(key)
    a = joined(model.generate_stream(2, seed=SEED, chunk_frames=2, num_frames=4, labels=[0, 0]))
    b = joined(model.generate_stream(2, seed=SEED, chunk_frames=2, num_frames=4, labels=[1, 1]))
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="labels are required"):
        model.generate_stream(2, seed=SEED)


@pytest.mark.parametrize("chunk_frames", [0, -3, 2.5, True])
def test_chunk_frames_below_one_or_not_an_int_is_an_error(chunk_frames):
    model = build("hmm")
    with pytest.raises(ValueError, match="`chunk_frames` must be an integer >= 1"):
        model.generate_stream(2, seed=0, chunk_frames=chunk_frames)  # raised on the call, not on next()


def test_bad_num_frames_and_num_are_errors():
    model = build("hmm")
    with pytest.raises(ValueError, match="`num_frames` must be an integer >= 1"):
        model.generate_stream(2, seed=0, num_frames=0)
    with pytest.raises(ValueError, match="`num` must be an integer >= 1"):
        model.generate_stream(0, seed=0)


@pytest.mark.parametrize("key", sorted(FIXED_LENGTH))
def test_fixed_length_models_cannot_stream_and_say_why(key):
    model = build(key, FIXED_LENGTH)
    assert not model.variable_length
    with pytest.raises(ValueError, match=rf"{type(model).__name__} cannot stream: .*at once"):
        model.generate_stream(1, seed=0)
    with pytest.raises(ValueError, match="cannot stream"):
        model.initial_state(1)
    assert streaming.streaming_description(model) == {}
    assert streaming.streaming_signature_names(model) == ()


# ------------------------------------------------------------------ description
def test_streaming_description_follows_the_contract():
    model = build("mocogan_conditional")
    description = streaming.streaming_description(model)
    assert set(description) == {"initial_state", "generate_chunk"}
    initial = description["initial_state"]
    assert set(initial["inputs"]) == {"content", "motion_init", "label"}
    assert initial["inputs"]["label"]["distribution"] == {"kind": "label", "num_classes": 3}
    assert initial["inputs"]["content"]["distribution"] == {"kind": "normal", "mean": 0.0, "stddev": 1.0}
    assert initial["outputs"]["clip_code"]["shape"] == [None, 4 + 3]
    chunk = description["generate_chunk"]
    assert chunk["inputs"]["motion_state"] == {
        "dtype": "float32", "shape": [None, 2], "dynamic_axes": {"0": "batch"}, "distribution": {"kind": "state"},
    }
    assert chunk["inputs"]["motion_noise"]["dynamic_axes"] == {"0": "batch", "1": "chunk_frames"}
    assert chunk["outputs"]["video"] == {
        "dtype": "uint8", "shape": [None, None, 16, 16, 1], "dynamic_axes": {"0": "batch", "1": "chunk_frames"},
        "range": [0, 255],
    }
    assert set(chunk["outputs"]) == {"video", "next_clip_code", "next_motion_state"}
    json.dumps(description)  # plain JSON


def test_description_of_models_without_clip_noise_and_without_state():
    hmm = streaming.streaming_description(build("hmm_bernoulli"))
    assert hmm["initial_state"]["inputs"] == {
        "batch_size": {"dtype": "int32", "shape": [], "dynamic_axes": {}, "distribution": {"kind": "count", "min": 1}},
    }
    assert hmm["generate_chunk"]["inputs"]["hidden_state"]["dtype"] == "int32"
    for name in ("state_noise", "emission_noise"):
        assert hmm["generate_chunk"]["inputs"][name]["distribution"] == {"kind": "uniform", "low": 0.0, "high": 1.0}
    dcgan = streaming.streaming_description(build("dcgan"))
    assert set(dcgan) == {"generate_chunk"}  # frames are independent: no state at all
    assert set(dcgan["generate_chunk"]["inputs"]) == {"latent"}
    assert dcgan["generate_chunk"]["inputs"]["latent"]["distribution"] == {"kind": "uniform", "low": -1.0, "high": 1.0}


# ------------------------------------------------------------------ exports
def _chunk_plan(total, sizes):
    start = 0
    for size in itertools.cycle(sizes):
        if start >= total:
            return
        size = min(size, total - start)
        yield start, size
        start += size


def _check_bounded_signature(model, signature):
    """No input of generate_chunk grows with the total length: states are fixed per video and
    the noise has the chunk's (dynamic) length; no seed, no frame count."""
    inputs = signature.structured_input_signature[1]
    assert set(inputs) == set(streaming.state_specs(model)) | set(model.frame_noise_names)
    # The signature takes any shape and checks the described one itself (exporting.validation).
    described = streaming.streaming_description(model)["generate_chunk"]["inputs"]
    for name in inputs:
        shape = described[name]["shape"]
        assert shape[0] is None
        if name in model.frame_noise_names:
            assert shape[1] is None and None not in shape[2:]  # (B, K, ...): the chunk only
        else:
            assert None not in shape[1:], (name, shape)


def _stream_through(run_initial, run_chunk, model, states, labels, sizes):
    """uint8 frames of one video stream, drawn with model.sample_noise chunk by chunk."""
    seed = tf.constant([SEED, 1], tf.int64)
    state, frames = None, []
    for start, size in _chunk_plan(TOTAL, sizes):
        noise = {k: v.numpy() for k, v in model.sample_noise(2, seed, num_frames=size, start_frame=start).items()}
        if state is None:
            clip = {k: v for k, v in noise.items() if k not in model.frame_noise_names}
            if labels is not None:
                clip["label"] = labels
            if not clip:
                clip["batch_size"] = np.array(2, np.int32)
            state = run_initial(clip) if states else {}
        out = run_chunk({**state, **{k: noise[k] for k in model.frame_noise_names}})
        assert out["video"].shape[1] == size and out["video"].dtype == np.uint8
        frames.append(out["video"])
        state = {name: out[streaming.NEXT_PREFIX + name] for name in states}
    return np.concatenate(frames, axis=1)


@pytest.mark.large
@pytest.mark.parametrize("key", ["mocogan_conditional", "dvdgan", "dcgan", "dcgan_conditional", "hmm", "kvae"])
def test_exported_chunks_equal_one_long_generate_call(key, tmp_path):
    import onnxruntime

    model = build(key)
    labels = labels_of(model)
    expected = to_uint8_video(model.generate(2, seed=SEED, num_frames=TOTAL, labels=labels)).numpy()
    states = streaming.state_specs(model)

    version = vidgen_tf.export_savedmodel(model, tmp_path / "serving")
    signatures = tf.saved_model.load(str(version)).signatures
    assert set(signatures) >= set(streaming.streaming_signature_names(model))
    assert ("initial_state" in signatures) == bool(states)
    _check_bounded_signature(model, signatures["generate_chunk"])
    description = streaming.streaming_description(model)
    for name, signature in signatures.items():
        if name in description:
            inputs = signature.structured_input_signature[1]
            assert set(inputs) == set(description[name]["inputs"])
            assert all(inputs[n].dtype.name == d["dtype"] for n, d in description[name]["inputs"].items())
            assert set(signature.structured_outputs) == set(description[name]["outputs"])

    def saved(signature):
        return lambda inputs: {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in inputs.items()}).items()}

    run_initial = saved(signatures["initial_state"]) if states else None
    for sizes in ((1,), (3,), (2, 1, 4)):
        got = _stream_through(run_initial, saved(signatures["generate_chunk"]), model, states, labels, sizes)
        assert np.max(np.abs(got.astype(int) - expected.astype(int))) <= 1

    onnx_path = vidgen_tf.export_onnx(model, tmp_path / "model.onnx", savedmodel_dir=version)
    initial_path, chunk_path = streaming.onnx_paths(onnx_path)
    assert chunk_path.is_file() and initial_path.is_file() == bool(states)
    report = json.loads((tmp_path / "model.chunk.onnx.parity.json").read_text())
    assert report["num_checks"] >= 8 and report["max_abs_diff_uint8"] <= 1
    # Each streaming file describes its own signature, as the SavedModel's description does.
    saved_description = vidgen_tf.exporting.describe(version)
    for path, name in ((chunk_path, "generate_chunk"), (initial_path, "initial_state")):
        if path.is_file():
            described = vidgen_tf.exporting.describe(path)
            assert set(described["signatures"]) == {name}
            entry = described["signatures"][name]
            assert entry["outputs"].pop("inputs_valid")["dtype"] == "bool"  # ONNX has no assert
            assert entry == saved_description["signatures"][name]
            assert described["parity"]["onnx"]["max_abs_diff"] <= 1
    chunk_session = onnxruntime.InferenceSession(str(chunk_path), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in chunk_session.get_outputs()]
    assert set(outputs) == {"video", "inputs_valid"} | {streaming.NEXT_PREFIX + n for n in states}

    def onnx_chunk(inputs):
        result = dict(zip(outputs, chunk_session.run(outputs, inputs)))
        assert result.pop("inputs_valid")  # the graph's own checks pass on valid input
        return result

    run_onnx_initial = None
    if states:
        initial_session = onnxruntime.InferenceSession(str(initial_path), providers=["CPUExecutionProvider"])
        names = [o.name for o in initial_session.get_outputs() if o.name != "inputs_valid"]
        run_onnx_initial = lambda inputs: dict(zip(names, initial_session.run(names, inputs)))  # noqa: E731
    for sizes in ((1,), (3,)):
        got = _stream_through(run_onnx_initial, onnx_chunk, model, states, labels, sizes)
        assert np.max(np.abs(got.astype(int) - expected.astype(int))) <= 1


def test_fixed_length_export_has_no_streaming_signature(tmp_path):
    model = build("video_vae", FIXED_LENGTH)
    version = vidgen_tf.export_savedmodel(model, tmp_path / "serving")
    assert set(tf.saved_model.load(str(version)).signatures) == {"serving_default", "generate", "log_prob",
                                                                 "log_prob_uint8"}


@pytest.mark.large
def test_exported_chunk_signatures_name_a_batch_mismatch_a_nan_state_and_a_long_chunk(tmp_path):
    model = build("mocogan_conditional")
    version = vidgen_tf.export_savedmodel(model, tmp_path / "serving", max_batch_size=4, max_frames=6)
    signatures = tf.saved_model.load(str(version)).signatures
    noise = model.sample_noise(2, tf.constant([SEED, 1], tf.int64), num_frames=3)
    clip = {k: v for k, v in noise.items() if k not in model.frame_noise_names}
    frames = {k: noise[k] for k in model.frame_noise_names}
    state = signatures["initial_state"](**clip, label=tf.constant([0, 1]))
    assert signatures["generate_chunk"](**state, **frames)["video"].shape[:2] == (2, 3)
    name = sorted(state)[0]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected 1 along axis 0 \(batch, as "):
        signatures["generate_chunk"](**dict(state, **{name: state[name][:1]}), **frames)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=f"{name}: expected finite values \\(a streaming state\\), got NaN or Inf"):
        signatures["generate_chunk"](**dict(state, **{name: state[name] * np.nan}), **frames)
    frame_name = model.frame_noise_names[0]
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{frame_name}: expected rank "):
        signatures["generate_chunk"](**state, **dict(frames, **{frame_name: frames[frame_name][0]}))
    long_noise = model.sample_noise(2, tf.constant([SEED, 1], tf.int64), num_frames=7)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=f"{frame_name}: expected 1 to 6 along axis 1 \\(chunk_frames; limit max_frames = 6\\)"):
        signatures["generate_chunk"](**state, **{k: long_noise[k] for k in model.frame_noise_names})
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"label: expected 2 along axis 0"):
        signatures["initial_state"](**clip, label=tf.constant([0, 1, 1]))
