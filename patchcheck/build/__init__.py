"""Builds: a prepared tree in, a QEMU binary out (`BuildRecord`), compiled in a network-less
container and cached by content; incremental bases, CI artifacts and the wiring of the stages."""
