"""Trees: a resolved source and a fix state (none, reverted, a known fix, a patch) in, a prepared
git work tree with the fix committed out, keyed by its tree id."""
