"""Reproducer scenarios: QEMU device topology, guest actions and the expected-outcome model."""
