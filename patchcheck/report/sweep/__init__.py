"""The sweep's reports: `SweepResults` and its `SweepVerdict` in, summary.md, index.html (a heat
map per direction), junit.xml and a reproduce.sh per finding out, and the terminal's text."""
