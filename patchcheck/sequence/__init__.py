"""Commits in sequence: a commit, a series or two ends of a bisection in, one small matrix per
commit and its exit code out (check, series, bisect and its `git bisect run` step)."""
