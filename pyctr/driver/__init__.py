"""The runtime driver: OCI bundles (config, users, seccomp profile), the runtime's command
line, console sockets, logs, the network hook."""
