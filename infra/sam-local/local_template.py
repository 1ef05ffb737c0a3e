#!/usr/bin/env python3
"""template.yaml for one architecture, for `sam build` and `sam local` on this machine.

    python3 infra/sam-local/local_template.py --arch x86_64 [--local] [--stage BIN_DIR] OUT.yaml

template.yaml is deployed as arm64. This writes the same template with, and only with:
  * `Architectures` and the ONNX Runtime layer (`ContentUri`, `CompatibleArchitectures`)
    switched to ARCH (x86_64 is what this machine's containers run);
  * relative `CodeUri` / `ContentUri` made absolute, so OUT can live outside the repo root;
  * with --local: `AWS_ENDPOINT_URL` declared in the Globals environment. `sam local`
    passes a function only the variables its template declares (and AWS_*), so without
    the declaration `--env-vars` could not point the functions at LocalStack.
  * with --stage BIN_DIR: the functions staged as `sam build` lays them out
    (OUT's dir/<LogicalId>/bootstrap, `CodeUri: <LogicalId>`), hard-linked from binaries
    already built: cargo's (BIN_DIR/<Binary>) or a `sam build`'s
    (BIN_DIR/<LogicalId>/bootstrap). `make test` stages the workspace's debug binaries,
    which are there already, where `sam build` would compile all seven functions again for
    its own target (~16 min here); `make sam-local-release` stages `make build-x86_64`'s.
Every substitution must match: a template change that breaks one fails here, loudly.
"""
import argparse
import os
import re
import shutil
import sys

ARCHS = {"x86_64": ("x86_64", "x86_64"), "arm64": ("arm64", "aarch64")}


def transform(text: str, arch: str, root: str, local: bool) -> str:
    lambda_arch, layer_arch = ARCHS[arch]

    def sub(pattern, repl, expect_min=1):
        nonlocal text
        text, n = re.subn(pattern, repl, text, flags=re.M)
        if n < expect_min:
            sys.exit(f"local_template.py: no match for {pattern!r} in template.yaml")
        return n

    sub(r"^(\s*)Architectures: \[arm64\]", rf"\1Architectures: [{lambda_arch}]")
    sub(r"^(\s*)CompatibleArchitectures: \[arm64\]", rf"\1CompatibleArchitectures: [{lambda_arch}]")
    sub(r"onnxruntime-aarch64\.zip", f"onnxruntime-{layer_arch}.zip")
    sub(r"^(\s*)CodeUri: \.\s*$", rf"\1CodeUri: {root}", expect_min=7)
    sub(r"^(\s*)ContentUri: (infra/\S+)", lambda m: f"{m.group(1)}ContentUri: {os.path.join(root, m.group(2))}", expect_min=2)
    if local:
        # The first variable of the Globals environment; the declaration goes right above it.
        sub(
            r"^(\s*)DATA_BUCKET: !Sub",
            r'\1AWS_ENDPOINT_URL: ""  # sam local only: --env-vars points it at LocalStack\n\1DATA_BUCKET: !Sub',
        )
    return text


FUNCTION = re.compile(r"^  (\w+):\s*$")
BINARY = re.compile(r"^\s+Binary: (\S+)\s*$")
CODE_URI = re.compile(r"^(\s+)CodeUri: \S+\s*$")


def stage(text: str, bin_dir: str, out_dir: str) -> str:
    """Point every function's CodeUri at OUT_DIR/<LogicalId>/bootstrap, a hard link to
    BIN_DIR/<Binary> or BIN_DIR/<LogicalId>/bootstrap (the function's Metadata comes
    before its Properties in template.yaml)."""
    lines, staged = [], 0
    function = binary = None
    for line in text.splitlines(keepends=True):
        if m := FUNCTION.match(line):
            function, binary = m.group(1), None
        elif m := BINARY.match(line):
            binary = m.group(1)
        elif (m := CODE_URI.match(line)) and function:
            if not binary:
                sys.exit(f"local_template.py: {function} has a CodeUri but no Metadata Binary before it")
            # cargo's layout (BIN_DIR/<Binary>) or sam build's (BIN_DIR/<LogicalId>/bootstrap).
            src = next(
                (p for p in (os.path.join(bin_dir, binary), os.path.join(bin_dir, function, "bootstrap"))
                 if os.path.isfile(p) and os.access(p, os.X_OK)),
                None,
            )
            if src is None:
                sys.exit(f"local_template.py: no {binary} or {function}/bootstrap in {bin_dir}: build them first")
            dst_dir = os.path.join(out_dir, function)
            os.makedirs(dst_dir, exist_ok=True)
            dst = os.path.join(dst_dir, "bootstrap")
            if os.path.lexists(dst):
                os.remove(dst)
            try:
                os.link(src, dst)
            except OSError:  # another file system: a copy
                shutil.copy2(src, dst)
            line = f"{m.group(1)}CodeUri: {function}\n"
            staged += 1
        lines.append(line)
    functions = len(re.findall(r"^    Type: AWS::Serverless::Function\s*$", text, flags=re.M))
    if staged != functions:
        sys.exit(f"local_template.py: staged {staged} of the template's {functions} functions")
    return "".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=sorted(ARCHS), required=True)
    p.add_argument("--local", action="store_true", help="declare AWS_ENDPOINT_URL for sam local")
    p.add_argument("--stage", metavar="BIN_DIR", help="stage BIN_DIR's binaries as sam build would")
    p.add_argument("out")
    a = p.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "template.yaml"), encoding="utf-8") as f:
        text = transform(f.read(), a.arch, root, a.local)
    out_dir = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(out_dir, exist_ok=True)
    if a.stage:
        text = stage(text, os.path.abspath(a.stage), out_dir)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
