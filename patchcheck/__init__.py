"""patchcheck: prove whether a QEMU patch fixes the live-migration bug it claims to fix."""

__version__ = "0.1.0"
