"""Guests: what a guest does to a QEMU before migration (`Action`, `GuestState`), and a real Linux
guest image booted to let its drivers act on the devices."""
