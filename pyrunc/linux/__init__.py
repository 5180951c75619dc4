"""The Linux mechanisms: namespaces, rootfs and mounts, cgroups, seccomp, capabilities,
LSM, process attributes, console, the interpreter guard."""
