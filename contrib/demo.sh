#!/usr/bin/env bash
# make demo: a busybox bundle from Debian's busybox-static, run with the installed pyrunc.
set -euo pipefail
PYRUNC=${1:?usage: demo.sh PYRUNC DIR}
DIR=${2:?usage: demo.sh PYRUNC DIR}
rm -rf "$DIR" && mkdir -p "$DIR/rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp /usr/bin/busybox "$DIR/rootfs/bin/busybox"
for a in $(/usr/bin/busybox --list); do [ -e "$DIR/rootfs/bin/$a" ] || ln -s busybox "$DIR/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$DIR/rootfs/etc/passwd"
echo 'root:x:0:' > "$DIR/rootfs/etc/group"
cd "$DIR"
"$PYRUNC" spec
# The default spec from `pyrunc spec` (as `runc spec`), with a non-interactive process.
/usr/bin/python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["hostname"] = "pyrunc-demo"
c["process"]["args"] = ["sh", "-c",
    "echo \"hello from $(hostname), pid $$ in its own pid namespace\"; "
    "echo 'user:' $(id); echo 'mounts:'; cat /proc/mounts | cut -d' ' -f2,3 | head -8; "
    "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; ls /"]
json.dump(c, open("config.json", "w"), indent=2)
PY
echo "+ $PYRUNC --root $DIR/state run -b $DIR demo"
"$PYRUNC" --root "$DIR/state" run -b "$DIR" demo
echo "+ exit status $?"
