"""One QEMU process: a binary and a machine type in, a QMP monitor out, with PCI configuration
space read and written by port I/O and ECAM, and the register specification of PCI Express."""
