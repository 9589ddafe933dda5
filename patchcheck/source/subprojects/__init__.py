"""Subprojects: a tree's pins (gitlinks, meson wraps) in, each pinned revision fetched once,
verified and copied into the work tree out."""
