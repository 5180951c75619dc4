"""Runtime-agnostic conformance tooling: the runtime-tools suite runner and pyrunc's own checks.

Everything here drives runtimes through their command line only (as containerd drives runc), so
it runs the same against runc, crun and pyrunc. Nothing here is imported by pyrunc.
"""
