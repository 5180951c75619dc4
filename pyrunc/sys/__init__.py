"""The only layer that calls libc or makes raw syscalls, and the light stand-ins for os, json
and socket the hot path uses."""
