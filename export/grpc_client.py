"""Generate videos through TF Serving's gRPC API (PredictionService/Predict), without TensorFlow.

    python export/grpc_client.py --target 127.0.0.1:8500 --model hmm \\
        --description exported/hmm --num 4 --frames 24 --out clip.gif

`tensorflow_serving.apis.*_pb2` import `tensorflow.core.framework.*_pb2`, which
runs `tensorflow/__init__` (a full TensorFlow import). This client carries its
own wire-compatible messages instead: the subset of `TensorProto`,
`TensorShapeProto`, `ModelSpec`, `PredictRequest` and `PredictResponse` it uses,
built at run time in a private descriptor pool, with the field numbers of
tensorflow's `tensor.proto`, `tensor_shape.proto`, `types.proto` and
tensorflow_serving's `model.proto`, `predict.proto`. The inputs are drawn as
the export description says (see `_client_common.py`); a uint8 video arrives as
`int_val` (TF Serving's encoding) or `tensor_content`, and gRPC's 4 MB receive
limit is raised (`--max-message-mb`, default 256).
"""

import argparse
import os
import sys

import numpy as np

if __package__ in (None, ""):  # run as a script: the shared code sits beside it
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _client_common as common  # noqa: E402

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"

# tensorflow/core/framework/types.proto
DATA_TYPES = {np.dtype(np.float32): 1, np.dtype(np.int32): 3, np.dtype(np.uint8): 4, np.dtype(np.int64): 9}
# The repeated field a value of each type lands in when it is not in
# tensor_content (tensor.proto: float_val = 5, int_val = 7 also for uint8, int64_val = 10).
VALUE_FIELDS = {1: "float_val", 3: "int_val", 4: "int_val", 9: "int64_val"}


def _messages():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    F = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()  # private: never clashes with TensorFlow's own, if loaded
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)

    def field(message, name, number, kind, label=F.LABEL_OPTIONAL, type_name=None, oneof=None):
        f = message.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            f.type_name = type_name
        if oneof is not None:
            f.oneof_index = oneof

    def map_entry(message, name, value_type):
        entry = message.nested_type.add(name=name)
        entry.options.map_entry = True
        field(entry, "key", 1, F.TYPE_STRING)
        field(entry, "value", 2, F.TYPE_MESSAGE, type_name=value_type)
        return f".{message.name}.{name}"

    framework = descriptor_pb2.FileDescriptorProto(
        name="vidgen_minimal/tensorflow/core/framework/tensor.proto", package="tensorflow", syntax="proto3")
    shape = framework.message_type.add(name="TensorShapeProto")
    dim = shape.nested_type.add(name="Dim")
    field(dim, "size", 1, F.TYPE_INT64)
    field(dim, "name", 2, F.TYPE_STRING)
    field(shape, "dim", 2, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".tensorflow.TensorShapeProto.Dim")
    field(shape, "unknown_rank", 3, F.TYPE_BOOL)
    tensor = framework.message_type.add(name="TensorProto")
    field(tensor, "dtype", 1, F.TYPE_INT32)  # the enum DataType, as its int (same wire type)
    field(tensor, "tensor_shape", 2, F.TYPE_MESSAGE, type_name=".tensorflow.TensorShapeProto")
    field(tensor, "version_number", 3, F.TYPE_INT32)
    field(tensor, "tensor_content", 4, F.TYPE_BYTES)
    field(tensor, "float_val", 5, F.TYPE_FLOAT, F.LABEL_REPEATED)
    field(tensor, "double_val", 6, F.TYPE_DOUBLE, F.LABEL_REPEATED)
    field(tensor, "int_val", 7, F.TYPE_INT32, F.LABEL_REPEATED)
    field(tensor, "int64_val", 10, F.TYPE_INT64, F.LABEL_REPEATED)
    field(tensor, "bool_val", 11, F.TYPE_BOOL, F.LABEL_REPEATED)
    pool.Add(framework)

    serving = descriptor_pb2.FileDescriptorProto(
        name="vidgen_minimal/tensorflow_serving/apis/predict.proto", package="tensorflow.serving", syntax="proto3",
        dependency=[framework.name, wrappers.name])
    spec = serving.message_type.add(name="ModelSpec")
    spec.oneof_decl.add(name="version_choice")
    field(spec, "name", 1, F.TYPE_STRING)
    field(spec, "version", 2, F.TYPE_MESSAGE, type_name=".google.protobuf.Int64Value", oneof=0)
    field(spec, "signature_name", 3, F.TYPE_STRING)
    field(spec, "version_label", 4, F.TYPE_STRING, oneof=0)
    request = serving.message_type.add(name="PredictRequest")
    field(request, "model_spec", 1, F.TYPE_MESSAGE, type_name=".tensorflow.serving.ModelSpec")
    entry = map_entry(request, "InputsEntry", ".tensorflow.TensorProto")
    field(request, "inputs", 2, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".tensorflow.serving" + entry)
    field(request, "output_filter", 3, F.TYPE_STRING, F.LABEL_REPEATED)
    response = serving.message_type.add(name="PredictResponse")
    entry = map_entry(response, "OutputsEntry", ".tensorflow.TensorProto")
    field(response, "outputs", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".tensorflow.serving" + entry)
    field(response, "model_spec", 2, F.TYPE_MESSAGE, type_name=".tensorflow.serving.ModelSpec")
    pool.Add(serving)

    def message(name):
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

    return {name: message(full) for name, full in [
        ("TensorProto", "tensorflow.TensorProto"), ("ModelSpec", "tensorflow.serving.ModelSpec"),
        ("PredictRequest", "tensorflow.serving.PredictRequest"),
        ("PredictResponse", "tensorflow.serving.PredictResponse")]}


_MESSAGES = {}


def messages():
    """The message classes, by their short names (built once)."""
    if not _MESSAGES:
        _MESSAGES.update(_messages())
    return _MESSAGES


def tensor_proto(array):
    """A numpy array -> TensorProto, encoded as `tf.make_tensor_proto` does.

    More than one value: little-endian bytes in `tensor_content`; a single
    value: the typed repeated field (`float_val`, `int_val`, `int64_val`).
    """
    array = np.asarray(array)
    if array.dtype not in DATA_TYPES:
        raise common.ClientError(f"Cannot send a {array.dtype} tensor; this client sends "
                                 f"{', '.join(str(d) for d in DATA_TYPES)}.")
    dtype = DATA_TYPES[array.dtype]
    proto = messages()["TensorProto"](dtype=dtype)
    proto.tensor_shape.SetInParent()  # present even for a scalar, as TensorFlow writes it
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if array.size > 1:
        proto.tensor_content = array.astype(array.dtype.newbyteorder("<")).tobytes()
    else:
        getattr(proto, VALUE_FIELDS[dtype]).extend(array.ravel().tolist())
    return proto


def to_numpy(proto):
    """A TensorProto of float32, int32, uint8 or int64 -> numpy array."""
    dtypes = {code: dtype for dtype, code in DATA_TYPES.items()}
    if proto.dtype not in dtypes:
        raise common.ClientError(f"The server returned a tensor of DataType {proto.dtype}; this client reads "
                                 "float32, int32, uint8 and int64.")
    dtype = dtypes[proto.dtype]
    shape = [d.size for d in proto.tensor_shape.dim]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    values = np.asarray(getattr(proto, VALUE_FIELDS[proto.dtype]), dtype)
    size = int(np.prod(shape))
    if values.size == 1 and size != 1:  # TensorFlow's short form: one value fills the tensor
        values = np.full(size, values[0], dtype)
    if values.size != size:
        raise common.ClientError(f"The server returned {values.size} values for a tensor of shape {shape}.")
    return values.reshape(shape)


def predict_request(model, inputs, signature_name="serving_default", version=None):
    """A PredictRequest for `model` (and `version`), with numpy `inputs`."""
    request = messages()["PredictRequest"]()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tensor_proto(value))
    return request


def predict(target, request, timeout=300.0, max_message_mb=256):
    """Sends `request` to `target` (host:port); returns dict name -> numpy array.

    The receive and send limits are `max_message_mb` megabytes (gRPC's default
    receive limit, 4 MB, holds about 16 uint8 clips of 16 x 64 x 64).
    """
    import grpc

    limit = int(max_message_mb * 1024 * 1024)
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    with grpc.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary(PREDICT_METHOD, request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=messages()["PredictResponse"].FromString)
        try:
            response = call(request, timeout=timeout)
        except grpc.RpcError as error:
            hint = ""
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                hint = f" (the limit is {max_message_mb} MB: raise --max-message-mb)"
            raise common.ClientError(f"Predict on {target} failed: {error.code().name}: {error.details()}{hint}") \
                from None
    return {name: to_numpy(proto) for name, proto in response.outputs.items()}


def generate(target, model, description, num=4, frames=None, label=None, seed=0, signature="serving_default",
             version=None, max_message_mb=256, timeout=300.0, num_steps=None,
             guidance_scale=None):
    """Draws the inputs, calls Predict, checks and returns the uint8 videos `(N, T, H, W, C)`."""
    inputs = common.draw_inputs(description, signature, num=num, seed=seed, frames=frames, label=label,
                                num_steps=num_steps, guidance_scale=guidance_scale)
    output = common.video_output(description, signature)
    outputs = predict(target, predict_request(model, inputs, signature, version), timeout, max_message_mb)
    if output not in outputs:
        raise common.ClientError(f"The response has no {output!r} output (it has {', '.join(outputs)}).")
    return common.check_video(outputs[output], description, signature, output)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="127.0.0.1:8500", help="TF Serving's gRPC address (default 127.0.0.1:8500)")
    common.add_server_arguments(parser)
    parser.add_argument("--max-message-mb", type=float, default=256, help="gRPC message size limit (default 256)")
    common.add_generation_arguments(parser)
    args = parser.parse_args(argv)
    common.check_output_path(args.out)
    description = common.load_description(args.description)
    videos = generate(args.target, args.model, description, num=args.num, frames=args.frames, label=args.label,
                      seed=args.seed, signature=args.signature, version=args.version,
                      num_steps=args.num_steps, guidance_scale=args.guidance_scale,
                      max_message_mb=args.max_message_mb, timeout=args.timeout)
    common.write_videos(args.out, videos, fps=args.fps)
    print(f"{args.model} (gRPC {args.target}, {args.signature}): wrote {args.out}: videos {list(videos.shape)} uint8")
    return 0


if __name__ == "__main__":
    sys.exit(common.run_main(main))
