"""Stand-ins for TF Serving's REST and gRPC front ends, for the export clients' tests and demos.

No TF Serving binary is available on this project's machines. These servers
listen on 127.0.0.1 only and answer as TF Serving does: `POST
/v1/models/NAME[/versions/N]:predict` with the columnar (`inputs` ->
`outputs`) and row (`instances` -> `predictions`) JSON formats, errors as
`{"error": ...}`; and gRPC `tensorflow.serving.PredictionService/Predict`
through tensorflow-serving-api's own servicer base class and messages, a uint8
output in `int_val` as TF Serving's `AsProtoField` writes it. They answer by
running one SavedModel's signatures in this process: they stand in for TF
Serving's process, not its code (no batching, no version policy, no model
config file).

    python -m tests.serving_standins DIR/hmm/1 --name hmm --rest-port 8501 --grpc-port 8500
"""

import argparse
import json
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import tensorflow as tf

HOST = "127.0.0.1"


class Signatures:
    """The SavedModel's signatures, called as TF Serving calls them; records each request's inputs."""

    def __init__(self, name, version_dir):
        self.name, self.version = name, int(Path(version_dir).name)
        self.signatures = tf.saved_model.load(str(version_dir)).signatures
        self.requests = []

    def run(self, signature_name, inputs):
        """inputs: name -> numpy array (as the wire carried it) -> name -> numpy output."""
        self.requests.append((signature_name, inputs))
        function = self.signatures[signature_name]
        specs = function.structured_input_signature[1]
        tensors = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()}
        return {k: v.numpy() for k, v in function(**tensors).items()}


class _RestHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        model = self.server.standin_model
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append((self.path, body))
        accepted = {f"/v1/models/{model.name}:predict", f"/v1/models/{model.name}/versions/{model.version}:predict"}
        if self.path not in accepted:
            return self._answer(404, {"error": f"Servable not found for request: {self.path}"})
        name = body.get("signature_name", "serving_default")
        if "inputs" in body:
            inputs = {k: np.asarray(v) for k, v in body["inputs"].items()}
        else:
            rows = body["instances"]
            inputs = {k: np.asarray([row[k] for row in rows]) for k in rows[0]}
        try:
            outputs = model.run(name, inputs)
        except Exception as error:  # TF Serving answers errors as {"error": ...}
            return self._answer(400, {"error": str(error)})
        if "inputs" in body:
            values = {k: v.tolist() for k, v in outputs.items()}
            return self._answer(200, {"outputs": next(iter(values.values())) if len(values) == 1 else values})
        count = len(next(iter(outputs.values())))
        if len(outputs) == 1:
            return self._answer(200, {"predictions": next(iter(outputs.values())).tolist()})
        return self._answer(200, {"predictions": [{k: v[i].tolist() for k, v in outputs.items()}
                                                  for i in range(count)]})


def start_rest(model, port=8501):
    """Serves `model` (a `Signatures`) over REST on 127.0.0.1:`port` (0: any free port) in a thread.

    Returns `(server, thread)`; `server.bodies` records each request's (path, JSON body). Stop it
    with `server.shutdown(); server.server_close()`.
    """
    server = ThreadingHTTPServer((HOST, port), _RestHandler)
    server.standin_model, server.bodies = model, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def _uint8_as_int_val(value):
    """A uint8 output as TF Serving's gRPC answers it: in int_val."""
    proto = tf.make_tensor_proto(value)
    proto.ClearField("tensor_content")
    proto.int_val.extend(value.ravel().tolist())
    return proto


def start_grpc(model, port=8500):
    """Serves `model` over gRPC PredictionService on 127.0.0.1:`port` (0: any free port).

    Returns `(server, "127.0.0.1:PORT")`; stop it with `server.stop(None)`.
    """
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            spec = request.model_spec
            if spec.name != model.name or (spec.HasField("version") and spec.version.value != model.version):
                context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {spec.name}")
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            try:
                outputs = model.run(spec.signature_name or "serving_default", inputs)
            except Exception as error:  # noqa: BLE001 - answered as TF Serving does, with a status
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            response = predict_pb2.PredictResponse()
            response.model_spec.CopyFrom(spec)
            for name, value in outputs.items():
                response.outputs[name].CopyFrom(
                    _uint8_as_int_val(value) if value.dtype == np.uint8 else tf.make_tensor_proto(value))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         options=[("grpc.max_send_message_length", 256 * 1024 * 1024)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
    bound = server.add_insecure_port(f"{HOST}:{port}")
    server.start()
    server.standin_model = model
    return server, f"{HOST}:{bound}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version_dir", help="a SavedModel version directory, e.g. DIR/hmm/1")
    parser.add_argument("--name", required=True, help="the model name clients ask for")
    parser.add_argument("--rest-port", type=int, default=8501)
    parser.add_argument("--grpc-port", type=int, default=8500)
    parser.add_argument("--seconds", type=float, default=600, help="stop after this many seconds (default 600)")
    args = parser.parse_args(argv)
    model = Signatures(args.name, args.version_dir)
    rest, thread = start_rest(model, args.rest_port)
    grpc_server, target = start_grpc(model, args.grpc_port)
    print(f"stand-in serving {args.name} v{model.version}: REST http://{HOST}:{rest.server_port}, gRPC {target}; "
          f"stopping in {args.seconds:.0f} s", flush=True)
    try:
        threading.Event().wait(args.seconds)
    finally:
        rest.shutdown()
        rest.server_close()
        grpc_server.stop(None).wait(10)


if __name__ == "__main__":
    main()
