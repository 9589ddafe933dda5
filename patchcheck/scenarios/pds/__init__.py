"""Scenario pds: the PCIe slot Presence Detect State bug (the fix in hw/pci/pcie.c, needed on the
destination); scenario.py is its Scenario, slot.py its topology, actions and model."""
