"""Real guest operating systems for the reproducer (see guests/linux.py)."""
