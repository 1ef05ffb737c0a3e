"""Check the ONNX model against TensorFlow running the original TF.js graph.

    python models/tools/check_tf_parity.py nanodet.json model.onnx [--input-name images]

Rebuilds a TF GraphDef from the TF.js `modelTopology` plus the weights in the .bin file
(float16-quantised weights are dequantised by tf2onnx's reader, exactly as the converter
does), runs it and the ONNX model on the same random input and on a constant image, and
fails when any output differs by more than --atol. Outputs are paired by shape.
"""
import argparse
import json
import os
import sys

import numpy as np

np.product = np.prod  # tf2onnx 1.17 under numpy 2
np.bool = bool

import onnxruntime as ort  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from tf2onnx import tfjs_utils  # noqa: E402


def load_tfjs_graph(model_json):
    mj = json.load(open(model_json))
    gd = json_format.ParseDict(
        {"node": mj["modelTopology"]["node"], "versions": mj["modelTopology"].get("versions", {})},
        tf.compat.v1.GraphDef(),
        ignore_unknown_fields=True,
    )
    weights = {}
    for group in mj["weightsManifest"]:
        data = b"".join(open(os.path.join(os.path.dirname(model_json), p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            name, arr, n = tfjs_utils.read_tfjs_weight(w, data, off)
            off += n
            weights[name] = arr
    for n in gd.node:
        if n.op == "Const":
            if n.name not in weights:
                sys.exit(f"no weight for Const {n.name}")
            dt = tf.dtypes.as_dtype(n.attr["dtype"].type).as_numpy_dtype  # TF.js stores int64 as int32
            n.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights[n.name].astype(dt)))
    sig = mj["signature"]
    return gd, list(sig["inputs"].keys()), list(sig["outputs"].keys())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tfjs_json")
    ap.add_argument("onnx")
    ap.add_argument("--input-name", default="images")
    ap.add_argument("--atol", type=float, default=1e-4)
    args = ap.parse_args()

    gd, tf_inputs, tf_outputs = load_tfjs_graph(args.tfjs_json)
    sess = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape
    probes = {
        "random": np.random.default_rng(1).random(shape, dtype=np.float32),
        "grey": np.full(shape, 0.5, np.float32),
    }
    worst = 0.0
    with tf.Graph().as_default() as g:
        tf.compat.v1.import_graph_def(gd, name="")
        with tf.compat.v1.Session(graph=g) as s:
            for label, x in probes.items():
                ref = s.run(tf_outputs, {tf_inputs[0]: x})
                got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {args.input_name: x})))
                by_shape = {v.shape: (n, v) for n, v in got.items()}
                for tname, r in zip(tf_outputs, ref):
                    oname, o = by_shape[r.shape]
                    diff = float(np.abs(o - r).max())
                    worst = max(worst, diff)
                    print(f"{label:6s} {tname:13s} vs {oname:7s} {list(r.shape)} max|diff| = {diff:.3g}")
    if worst > args.atol:
        sys.exit(f"FAIL: max difference {worst} > {args.atol}")
    print(f"TF.js graph (run by TensorFlow) and ONNX agree within {args.atol}")


if __name__ == "__main__":
    main()
