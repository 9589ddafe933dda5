"""Scenario aer: the AER Uncorrectable Error Mask bug (the hw_compat_7_2 entry, needed on the
source); scenario.py is its Scenario, model.py its model."""
