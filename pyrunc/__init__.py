"""pyrunc: an OCI runtime (runtime-spec 1.3) in Python, a drop-in for runc (see README.md)."""

VERSION = "0.1.0"
OCI_VERSION = "1.3.0"  # the runtime-spec version pyrunc implements
