"""Scenarios, one package per bug: its topology, guest actions, expected-outcome model, known fixes
and signature; `registry` finds them by name."""
