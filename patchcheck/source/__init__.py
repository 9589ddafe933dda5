"""Sources: a spec (`git:<repo>@<ref>`, `debian:<suite>`) in, a resolved commit in a local
repository out, with the subprojects its build reads and the refs of a user's repository."""
