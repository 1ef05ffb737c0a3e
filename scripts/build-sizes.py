#!/usr/bin/env python3
"""Sizes of a `sam build` output against Lambda's deployment limits.

    "$(bash scripts/sam.sh --python)" scripts/build-sizes.py .aws-sam/build

For every function of BUILD_DIR/template.yaml: its code unzipped and zipped (deflate, as
`sam package` uploads it), and the layers it uses (their ContentUri zips); then checks
Lambda's limits: 50 MB per zipped upload, 250 MB for a function's code plus its layers
unzipped (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
Exits 1 if a function is over one.
"""
import io
import os
import sys
import zipfile

import yaml  # PyYAML: run with scripts/sam.sh --python, whose venv has it

MB = 1024 * 1024
ZIPPED_LIMIT = 50 * MB
UNZIPPED_LIMIT = 250 * MB


def zipped_size(directory: str) -> tuple[int, int]:
    """(unzipped, zipped) bytes of DIRECTORY's files as one deflated zip."""
    buf, raw = io.BytesIO(), 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for dirpath, _, files in os.walk(directory):
            for f in sorted(files):
                path = os.path.join(dirpath, f)
                raw += os.path.getsize(path)
                z.write(path, os.path.relpath(path, directory))
    return raw, buf.tell()


def layer_sizes(path: str) -> tuple[int, int]:
    with zipfile.ZipFile(path) as z:
        return sum(i.file_size for i in z.infolist()), os.path.getsize(path)


def parse(template: str):
    """{function: (CodeUri, [layer logical ids])} and {layer: ContentUri} of a built
    template (sam build writes it in long form: `Ref:`, no YAML tags)."""
    with open(template, encoding="utf-8") as f:
        resources = yaml.safe_load(f)["Resources"]
    functions, layers = {}, {}
    for name, r in resources.items():
        props = r.get("Properties", {})
        if r["Type"] == "AWS::Serverless::Function":
            functions[name] = (props["CodeUri"], [layer["Ref"] for layer in props.get("Layers", [])])
        elif r["Type"] == "AWS::Serverless::LayerVersion":
            layers[name] = props["ContentUri"]
    return functions, layers


def main() -> int:
    build = sys.argv[1] if len(sys.argv) > 1 else ".aws-sam/build"
    functions, layers = parse(os.path.join(build, "template.yaml"))
    if not functions:
        print(f"build-sizes.py: no functions in {build}/template.yaml", file=sys.stderr)
        return 1
    # ContentUri is relative to the built template (sam build rewrites it so) or absolute.
    layer_size = {name: layer_sizes(os.path.join(build, uri)) for name, uri in layers.items()}
    over = []
    print(f"{build}: {'':<26}{'unzipped MB':>12}{'zipped MB':>11}{'+ layers MB':>13}")
    for name, (size, zipped) in sorted(layer_size.items()):
        print(f"  layer    {name:<24}{size / MB:>12.1f}{zipped / MB:>11.1f}")
    for name, (uri, used) in sorted(functions.items()):
        raw, zipped = zipped_size(os.path.join(build, uri))
        total = raw + sum(layer_size[layer][0] for layer in used)
        print(f"  function {name:<24}{raw / MB:>12.1f}{zipped / MB:>11.1f}{total / MB:>13.1f}")
        if zipped > ZIPPED_LIMIT or total > UNZIPPED_LIMIT:
            over.append(name)
    for name in over:
        print(f"build-sizes.py: {name} is over Lambda's limits (50 MB zipped, 250 MB with layers unzipped)",
              file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
