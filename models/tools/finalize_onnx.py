"""Give the tf2onnx output of NanoDet clean tensor names and static output shapes.

    python models/tools/finalize_onnx.py RAW.onnx OUT.onnx --meta key=value ...

* input  `input_1:0`                      -> `images`        [1, 3, H, W]
* output [1, (H/s)*(W/s), num_classes]     -> `cls_{s}`       (s = stride 8, 16, 32)
* output [1, (H/s)*(W/s), 4*(reg_max+1)]   -> `reg_{s}`

Outputs are matched by their shapes (read from onnxruntime on a probe input), not by the
TF names, and put in the order cls_8, reg_8, cls_16, reg_16, cls_32, reg_32. Only names (all of
them, see below), the order of the graph's output list, the declared output shapes, the graph doc_string and
metadata_props change:
the script checks that every output is bit-identical to the raw model's on a random input.
"""
import argparse
import hashlib
import heapq
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort

NUM_CLASSES = 80  # COCO; cross-checked against the class-score outputs below


def run(path, feed):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feed)))


def canonical_node_order(g):
    """Re-order g.node topologically, breaking ties by a structural hash (names ignored)."""
    sig = {}
    for vi in g.input:
        sig[vi.name] = "in:" + vi.name
    for t in g.initializer:
        arr = onnx.numpy_helper.to_array(t)
        sig[t.name] = "w:" + hashlib.sha256(f"{t.data_type}|{list(t.dims)}|".encode() + arr.tobytes()).hexdigest()
    nodes = list(g.node)
    producer = {}
    node_sig = []
    for i, n in enumerate(nodes):  # tf2onnx output is already topologically sorted
        h = hashlib.sha256()
        h.update(f"{n.domain}|{n.op_type}".encode())
        for a in sorted(n.attribute, key=lambda a: a.name):
            h.update(a.SerializeToString())
        for x in n.input:
            h.update(b"|" + sig.get(x, "").encode())
        node_sig.append(h.hexdigest())
        for k, x in enumerate(n.output):
            sig[x] = f"{node_sig[i]}:{k}"
            producer[x] = i
    deps = [{producer[x] for x in n.input if x in producer} for n in nodes]
    users = [[] for _ in nodes]
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    missing = [len(d) for d in deps]
    ready = [(node_sig[i], i) for i in range(len(nodes)) if missing[i] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            missing[u] -= 1
            if missing[u] == 0:
                heapq.heappush(ready, (node_sig[u], u))
    if len(order) != len(nodes):
        sys.exit("graph has a cycle")
    copies = [onnx.NodeProto.FromString(nodes[i].SerializeToString()) for i in order]
    del g.node[:]
    g.node.extend(copies)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("out")
    ap.add_argument("--input-name", default="images")
    ap.add_argument("--meta", action="append", default=[], help="key=value for metadata_props")
    ap.add_argument("--doc", default="", help="graph doc_string (tf2onnx writes its temporary input path there)")
    args = ap.parse_args()

    model = onnx.load(args.raw)
    g = model.graph
    if len(g.input) != 1:
        sys.exit(f"expected one graph input, got {[i.name for i in g.input]}")
    old_in = g.input[0].name
    dims = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[0] != 1 or dims[1] != 3 or min(dims) <= 0:
        sys.exit(f"expected a static [1,3,H,W] input, got {dims}")
    in_h, in_w = dims[2], dims[3]

    probe = np.random.default_rng(0).random((1, 3, in_h, in_w), dtype=np.float32)
    raw_out = run(args.raw, {old_in: probe})

    rename = {old_in: args.input_name}
    shapes = {}
    for name, val in raw_out.items():
        if val.ndim != 3 or val.shape[0] != 1:
            sys.exit(f"unexpected output {name} {val.shape}")
        cells, ch = val.shape[1], val.shape[2]
        stride = None
        for s in (8, 16, 32, 64):
            if (in_h // s) * (in_w // s) == cells:
                stride = s
        if stride is None:
            sys.exit(f"cannot match {name} {val.shape} to a stride")
        if ch == NUM_CLASSES:
            new = f"cls_{stride}"
        elif ch % 4 == 0 and ch < NUM_CLASSES:
            new = f"reg_{stride}"
        else:
            sys.exit(f"cannot classify {name} {val.shape}")
        if new in rename.values():
            sys.exit(f"two outputs map to {new}")
        rename[name] = new
        shapes[new] = list(val.shape)

    taken = {o for n in g.node for o in n.output} | {i.name for i in g.initializer}
    clash = (set(rename.values()) & taken) - set(rename.keys())
    if clash:
        sys.exit(f"new names already used in the graph: {clash}")

    # tf2onnx numbers the names it invents, and orders independent nodes, differently from run to
    # run (same graph, same values). To make the file bytes reproducible, the nodes are put in a
    # canonical topological order (ties broken by a hash of each node's structure and weights)
    # and every other name is made canonical: node i -> "n{i}_{op}", its outputs ->
    # "n{i}_{op}:{k}", initializers -> "w{j}" in order of first use.
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in g.node for a in n.attribute):
        sys.exit("subgraphs are not handled")
    canonical_node_order(g)
    names = dict(rename)
    init_names = {t.name for t in g.initializer}
    for i, n in enumerate(g.node):
        n.name = f"n{i:03d}_{n.op_type}"
        for k, x in enumerate(n.output):
            if x and x not in names:
                names[x] = f"{n.name}:{k}"
    j = 0
    for n in g.node:
        for x in n.input:
            if x in init_names and x not in names:
                names[x] = f"w{j:03d}"
                j += 1
    unused = init_names - set(names)
    if unused:
        sys.exit(f"unused initializers: {sorted(unused)}")
    for n in g.node:
        for i, x in enumerate(n.input):
            if x:
                n.input[i] = names[x]
        for i, x in enumerate(n.output):
            if x:
                n.output[i] = names[x]
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        vi.name = names[vi.name]
    for t in g.initializer:
        t.name = names[t.name]
    inits = sorted((onnx.TensorProto.FromString(t.SerializeToString()) for t in g.initializer), key=lambda t: t.name)
    del g.initializer[:]
    g.initializer.extend(inits)

    # static output shapes, deterministic order
    def order(o):
        kind, stride = o.name.split("_")
        return (int(stride), 0 if kind == "cls" else 1)

    outs = sorted([onnx.ValueInfoProto.FromString(o.SerializeToString()) for o in g.output], key=order)
    for o in outs:
        shp = o.type.tensor_type.shape
        for d, v in zip(shp.dim, shapes[o.name]):
            d.Clear()
            d.dim_value = v
    del g.output[:]
    g.output.extend(outs)

    g.doc_string = args.doc  # reproducible bytes: no scratch-directory path in the file
    for kv in args.meta:
        k, _, v = kv.partition("=")
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v

    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, args.out)

    new_out = run(args.out, {args.input_name: probe})
    for old, new in rename.items():
        if old == old_in:
            continue
        if not np.array_equal(raw_out[old], new_out[new]):
            sys.exit(f"output {new} differs from {old}")
    print(f"input  {old_in} -> {args.input_name} [1, 3, {in_h}, {in_w}]")
    for o in g.output:
        old = next(k for k, v in rename.items() if v == o.name)
        print(f"output {old} -> {o.name} {shapes[o.name]}")
    print("outputs identical to the raw conversion: yes")


if __name__ == "__main__":
    main()
