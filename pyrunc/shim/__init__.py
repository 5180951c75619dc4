"""containerd's shim v2 for pyrunc (`containerd-shim-pyrunc-v2`): the task API over ttrpc, served
by one long-lived process per containerd namespace that calls pyrunc in-process.

A layer above pyrunc.ops, beside pyrunc.cli: main (the binary's `start`/`delete`), daemon (the
serving process), task (the task service), stdio, mounts, metrics, events (the publisher),
server/loop (ttrpc server, epoll loop), ttrpc (framing), wire/messages (the protobuf codec and the
task API's message tables). No `protobuf` import: see wire.py.
"""
