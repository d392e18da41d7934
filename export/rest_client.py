"""Generate videos through TF Serving's REST API (`:predict`), with the standard library (no TensorFlow).

    python export/rest_client.py --url http://127.0.0.1:8501 --model hmm \\
        --description exported/hmm --num 4 --frames 24 --out clip.gif

Sends `POST /v1/models/NAME[/versions/N]:predict` with
`{"signature_name": ..., "inputs": {name: nested list}}` (`--format columnar`,
the default) or `{"signature_name": ..., "instances": [{name: value}, ...]}`
(`--format row`: one object per video, so every input needs a batch axis),
the inputs drawn as the export description says (see `_client_common.py`), and
decodes the uint8 `video` from the response's `outputs` (columnar) or
`predictions` (row). REST JSON writes every pixel as a number (up to four bytes
with its comma): for long or large clips gRPC (grpc_client.py) sends several
times fewer bytes (`bench/generate_latency.py --encoding-only` measures both).
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

import numpy as np

if __package__ in (None, ""):  # run as a script: the shared code sits beside it
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _client_common as common  # noqa: E402

FORMATS = ("columnar", "row")


def predict_url(url, model, version=None):
    """`URL/v1/models/MODEL[/versions/N]:predict`."""
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "") + ":predict"
    return url.rstrip("/") + path


def request_body(inputs, signature_name="serving_default", request_format="columnar"):
    """The JSON body (a dict) of a predict request with numpy `inputs`.

    Args:
        inputs: dict name -> numpy array.
        signature_name: str. Defaults to `"serving_default"`.
        request_format: str. `"columnar"` (`inputs`) or `"row"`
            (`instances`, one object per row of the batch axis). Defaults to
            `"columnar"`.
    """
    if request_format not in FORMATS:
        raise common.ClientError(f"The request format must be one of {', '.join(FORMATS)}, got {request_format!r}.")
    if request_format == "columnar":
        return {"signature_name": signature_name, "inputs": {name: value.tolist() for name, value in inputs.items()}}
    rows = {name: (value.shape[0] if value.ndim else None) for name, value in inputs.items()}
    if None in rows.values() or len(set(rows.values())) != 1:
        raise common.ClientError(f"The row format needs every input to share its first (batch) axis; the inputs "
                                 f"have {', '.join(f'{k}: {list(v.shape)}' for k, v in inputs.items())}. Use "
                                 "--format columnar.")
    count = next(iter(rows.values()))
    lists = {name: value.tolist() for name, value in inputs.items()}
    instances = [{name: lists[name][i] for name in inputs} for i in range(count)]
    return {"signature_name": signature_name, "instances": instances}


def decode_response(body, output_names, request_format="columnar"):
    """A predict response (a dict) -> dict name -> numpy array.

    TF Serving leaves the names out where a signature has a single output:
    columnar `{"outputs": value}`, row `{"predictions": [value, ...]}`.
    """
    if "error" in body:
        raise common.ClientError(f"The server answered with an error: {body['error']}")
    key = "outputs" if request_format == "columnar" else "predictions"
    if key not in body:
        raise common.ClientError(f"The response has no {key!r} (it has {', '.join(body)}).")
    value = body[key]
    if request_format == "columnar":
        if isinstance(value, dict):
            return {name: np.asarray(v) for name, v in value.items()}
        return {output_names[0]: np.asarray(value)}
    if value and isinstance(value[0], dict):
        return {name: np.asarray([row[name] for row in value]) for name in value[0]}
    return {output_names[0]: np.asarray(value)}


def post(url, body, timeout=300.0):
    """POSTs `body` as JSON; returns the decoded JSON answer (or raises ClientError with the server's error)."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        try:
            text = json.loads(text).get("error", text)
        except (ValueError, AttributeError):
            pass
        raise common.ClientError(f"POST {url} failed with HTTP {error.code}: {text}") from None
    except urllib.error.URLError as error:
        raise common.ClientError(f"POST {url} failed: {error.reason}") from None


def generate(url, model, description, num=4, frames=None, label=None, seed=0, signature="serving_default",
             version=None, request_format="columnar", timeout=300.0, num_steps=None,
             guidance_scale=None):
    """Draws the inputs, POSTs them, checks and returns the uint8 videos `(N, T, H, W, C)`."""
    inputs = common.draw_inputs(description, signature, num=num, seed=seed, frames=frames, label=label,
                                num_steps=num_steps, guidance_scale=guidance_scale)
    output = common.video_output(description, signature)
    names = list(common.signature(description, signature)["outputs"])
    body = request_body(inputs, signature, request_format)
    outputs = decode_response(post(predict_url(url, model, version), body, timeout), names, request_format)
    if output not in outputs:
        raise common.ClientError(f"The response has no {output!r} output (it has {', '.join(outputs)}).")
    return common.check_video(outputs[output], description, signature, output)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8501", help="TF Serving's REST address "
                                                                       "(default http://127.0.0.1:8501)")
    common.add_server_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="columnar",
                        help="columnar (`inputs`, default) or row (`instances`)")
    common.add_generation_arguments(parser)
    args = parser.parse_args(argv)
    common.check_output_path(args.out)
    description = common.load_description(args.description)
    videos = generate(args.url, args.model, description, num=args.num, frames=args.frames, label=args.label,
                      seed=args.seed, signature=args.signature, version=args.version,
                      num_steps=args.num_steps, guidance_scale=args.guidance_scale, request_format=args.format,
                      timeout=args.timeout)
    common.write_videos(args.out, videos, fps=args.fps)
    print(f"{args.model} (REST {args.url}, {args.signature}, {args.format}): wrote {args.out}: "
          f"videos {list(videos.shape)} uint8")
    return 0


if __name__ == "__main__":
    sys.exit(common.run_main(main))
