"""pyctr: the image and registry side of pyrunc, a small docker-like engine.

It stands apart from the runtime: it drives any runc-compatible binary (pyrunc, runc, crun)
through its command line only, and imports nothing of pyrunc.

    cli, cli_args       argv -> one handler per verb; the only place that prints errors
    distribution        pull / push orchestration (platform choice, parallel layers, mounts)
    registry, auth      distribution-spec client on http.client; Basic/Bearer, credentials
    content             media types, digests, the VerifiedReader every blob read goes through
    store               the OCI image layout under --root (index.json names, flock, GC roots)
    layers, rootfs      safe layer unpacking by chain id, whiteouts, overlayfs or copy rootfs
    bundle, users       image config + run options -> config.json
    containers          container records and life cycle; monitor: foreground/detached runs
    imageops, archive   commit, rmi, prune; save/load of docker- and oci-archives
"""
