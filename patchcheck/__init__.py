"""patchcheck: prove whether a QEMU patch fixes the PCIe PDS live-migration bug."""

__version__ = "0.1.0"
