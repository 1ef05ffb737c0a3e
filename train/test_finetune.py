"""The fine-tuning script on a few steps (make test-train, in make test).

    python train/test_finetune.py --modelobs target/debug/modelobs

Checks, on two photos of datasets/animals: the written model directory loads in the Rust
detector (`modelobs predict --model`), its ONNX graph is the parent's with only the trained
initializers changed, model.json names parent, dataset (with the sha256 of every image it trained
on) and settings, the same seed gives the same bytes, and overfitting one photo lowers the loss.
Needs ORT_DYLIB_PATH for `modelobs predict`.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def finetune(data, out, *extra):
    cmd = [sys.executable, os.path.join(HERE, "finetune.py"), "--data", data, "--out", out,
           "--base", os.path.join(ROOT, "models/nanodet"), "--threads", "1", *extra]
    subprocess.run(cmd, check=True)
    return json.load(open(os.path.join(out, "model.json")))


def small_dataset(tmp, files):
    """A COCO dataset of a few photos of datasets/animals, in the export layout (images/)."""
    src = os.path.join(ROOT, "datasets/animals")
    coco = json.load(open(os.path.join(src, "annotations.json")))
    keep = [i for i in coco["images"] if i["file_name"] in files]
    ids = {i["id"] for i in keep}
    os.makedirs(os.path.join(tmp, "images"))
    for i in keep:
        shutil.copy(os.path.join(src, i["file_name"]), os.path.join(tmp, "images", i["file_name"]))
        i.pop("split", None)
    coco["images"] = keep
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
    json.dump(coco, open(os.path.join(tmp, "annotations.json"), "w"))
    return tmp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modelobs", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="modelobs-train-")
    try:
        data = small_dataset(os.path.join(tmp, "data"), {"farm-horse.jpg", "erase-kitten.jpg"})
        # Heads only (the default also trains the FPN's lateral convs): which tensors change is
        # then an exact list.
        a = finetune(data, os.path.join(tmp, "a"), "--max-steps", "2", "--batch", "2", "--split", "all", "--train", "head")
        b = finetune(data, os.path.join(tmp, "b"), "--max-steps", "2", "--batch", "2", "--split", "all", "--train", "head")
        assert a["sha256"] == b["sha256"], "the same seed gave different weights"
        parent = json.load(open(os.path.join(ROOT, "models/nanodet/model.json")))
        assert a["parent"] == {k: parent[k] for k in ("name", "version", "sha256")}, a["parent"]
        assert a["version"] != parent["version"] and a["version"].startswith("ft-"), a["version"]
        assert a["dataset"]["images"] == 2 and a["dataset"]["boxes"] == 6, a["dataset"]
        # Every image it trained on, by the sha256 of the file's bytes: the backtest skips these.
        want = sorted(hashlib.sha256(open(os.path.join(data, "images", f), "rb").read()).hexdigest()
                      for f in ("farm-horse.jpg", "erase-kitten.jpg"))
        assert a["dataset"]["images_sha256"] == want, a["dataset"]["images_sha256"]
        assert a["training"]["steps"] == 2 and a["training"]["train"] == "head", a["training"]
        assert a["sha256"] != parent["sha256"]

        old = onnx.load(os.path.join(ROOT, "models/nanodet", parent["file"]))
        new = onnx.load(os.path.join(tmp, "a", a["file"]))
        assert [(n.name, n.op_type, list(n.input), list(n.output)) for n in old.graph.node] == \
               [(n.name, n.op_type, list(n.input), list(n.output)) for n in new.graph.node], "graph changed"
        changed = sorted(i.name for i, j in zip(old.graph.initializer, new.graph.initializer)
                         if not np.array_equal(numpy_helper.to_array(i), numpy_helper.to_array(j)))
        head = {"w066", "w067", "w068", "w069", "w072", "w073", "w074", "w075", "w076", "w077", "w078", "w079"}
        assert set(changed) == head, f"changed initializers {changed}, want the heads' {sorted(head)}"
        assert os.path.getsize(os.path.join(tmp, "a", a["file"])) == parent["size_bytes"]

        out = subprocess.run([args.modelobs, "predict", "--json", "--model", os.path.join(tmp, "a"),
                              os.path.join(ROOT, "datasets/animals/farm-horse.jpg")],
                             check=True, capture_output=True, text=True).stdout
        answer = json.loads(out.splitlines()[0])
        assert answer["model"]["version"] == a["version"], answer["model"]

        # The candidate's drift reference: the images model.json says it trained on, profiled by
        # the Rust detector (what `make train` writes and `modelobs model push` stores).
        ref_path = os.path.join(tmp, "a", "reference.json")
        subprocess.run([args.modelobs, "drift", "reference", "--model", os.path.join(tmp, "a"),
                        "--training-set", "--out", ref_path, "--no-store"], check=True)
        ref = json.load(open(ref_path))
        assert ref["model"] == {"name": a["name"], "version": a["version"]}, ref["model"]
        assert ref["summary"]["profiled"] == 2 and ref["source"].startswith("training set"), \
            (ref["summary"]["profiled"], ref["source"])

        one = small_dataset(os.path.join(tmp, "one"), {"farm-horse.jpg"})
        c = finetune(one, os.path.join(tmp, "c"), "--epochs", "12", "--batch", "1", "--split", "all",
                     "--no-augment")
        first, last = c["training"]["loss_first"], c["training"]["loss_last"]
        assert c["training"]["steps"] == 12, c["training"]
        assert last < first, f"twelve steps on one photo: loss {first} -> {last}"
        print(f"test_finetune: ok (deterministic, heads only, loads in Rust, its training-set reference; overfit loss {first} -> {last})")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
