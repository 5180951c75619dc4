"""Images: the content-addressed store, layers and their overlay rootfs, references,
platforms, the registry client and its auth, named volumes."""
