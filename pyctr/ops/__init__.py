"""What pyctr does for its commands: pull/push, image operations, containers and their
monitor, save/load. Only the CLI imports these."""
