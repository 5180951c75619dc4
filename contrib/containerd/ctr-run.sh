#!/bin/sh
# Run a container under pyrunc with plain containerd, no CRI and no config change: ctr picks the
# runc shim v2 and hands it the binary. Usage: ctr-run.sh [IMAGE] [ID] [COMMAND...]
set -eu
PYRUNC=${PYRUNC:-/usr/local/bin/pyrunc}
IMAGE=${1:-docker.io/library/busybox:latest}
ID=${2:-pyrunc-demo}
[ $# -gt 2 ] && shift 2 || set -- sh -c 'echo hello from $(hostname); cat /proc/self/status | grep ^Cap'
ctr images ls -q | grep -qx "$IMAGE" || ctr images pull "$IMAGE"
exec ctr run --rm --runc-binary "$PYRUNC" --runc-root /run/pyrunc "$IMAGE" "$ID" "$@"
