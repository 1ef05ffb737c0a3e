#!/usr/bin/env bash
# The stand-in for AWS's `provided.al2023` base image, built from this machine's files and
# tagged as the real one, so `sam local invoke|start-api --skip-pull-image` use it (no
# container registry is reachable here). README.md says what differs from the real image.
#
#   bash infra/sam-local/base-image.sh        # needs the engine (engine.sh start) in this shell
#
# Only x86_64: the engine runs x86_64 containers; arm64 would need qemu-user binfmt.
# Contents: busybox (static) with the applets SAM's image build runs (sh, mv, chmod, cp,
# rm), the C and C++ runtime libraries the functions and libonnxruntime.so link (glibc
# 2.36 from Debian 12; the real image has 2.34: both satisfy the wheel's manylinux_2_28
# and cargo-lambda's glibc 2.17 target), CA certificates, /var/task, /var/runtime, /opt
# and /tmp. Rebuilt only when this script or the host files change (a content hash).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mkdir -p "$root/.cache/sam-local"
tag="public.ecr.aws/lambda/provided:al2023-x86_64"
SUDO="$([ "$(id -u)" = 0 ] || echo sudo)"
# busybox-static, not busybox: the image has no libraries of its own for a dynamic one.
dpkg -s busybox-static >/dev/null 2>&1 || {
  echo "base-image.sh: installing busybox-static (Debian)" >&2
  $SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq busybox-static >&2
}

libdir=/lib/x86_64-linux-gnu
libs=(libc.so.6 libm.so.6 libdl.so.2 librt.so.1 libpthread.so.0 libgcc_s.so.1 libstdc++.so.6)
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
fs="$stage/rootfs"
mkdir -p "$fs"/{bin,etc/ssl/certs,lib64,usr/lib64,var/task,var/runtime,var/rapid,opt/lib,tmp}
chmod 1777 "$fs/tmp"
cp /bin/busybox "$fs/bin/"
for applet in sh mv chmod cp rm ls cat mkdir ln env; do ln -s busybox "$fs/bin/$applet"; done
cp -L /lib64/ld-linux-x86-64.so.2 "$fs/lib64/"
for l in "${libs[@]}"; do cp -L "$libdir/$l" "$fs/lib64/"; done
cp -L /etc/ssl/certs/ca-certificates.crt "$fs/etc/ssl/certs/"
ln -s ../../etc/ssl/certs/ca-certificates.crt "$fs/etc/ssl/cert.pem" 2>/dev/null || true
echo "root:x:0:0:root:/root:/bin/sh" >"$fs/etc/passwd"
echo "root:x:0:" >"$fs/etc/group"
# ld.so's default search path on Debian is /lib/x86_64-linux-gnu; Amazon Linux's is /lib64.
echo "/lib64" >"$fs/etc/ld.so.conf"
mkdir -p "$fs/lib" && ln -s ../lib64 "$fs/lib/x86_64-linux-gnu"

hash="$( (cat "${BASH_SOURCE[0]}"; cd "$fs" && find . -type f | sort | xargs sha256sum) | sha256sum | cut -c1-16)"
if [ "$(podman image inspect --format '{{index .Labels "modelobs.hash"}}' "$tag" 2>/dev/null || true)" = "$hash" ]; then
  echo "base-image.sh: $tag is up to date" >&2
  exit 0
fi
# The real image's environment (LAMBDA_TASK_ROOT etc.) and working directory.
tar -C "$fs" -c . | podman import \
  --change "ENV PATH=/usr/local/bin:/usr/bin:/bin:/opt/bin" \
  --change "ENV LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib" \
  --change "ENV LAMBDA_TASK_ROOT=/var/task" \
  --change "ENV LAMBDA_RUNTIME_DIR=/var/runtime" \
  --change "ENV TZ=:/etc/localtime" \
  --change "WORKDIR /var/task" \
  --change "LABEL modelobs.hash=$hash" \
  --change "LABEL modelobs.stand-in=infra/sam-local/base-image.sh" \
  - "$tag" >"$root/.cache/sam-local/base-image.log" 2>&1 || {
  cat "$root/.cache/sam-local/base-image.log" >&2
  exit 1
}
echo "base-image.sh: built $tag ($(du -sh "$fs" | cut -f1))" >&2
