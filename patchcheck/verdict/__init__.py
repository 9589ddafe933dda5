"""The verdict: case results and a probe in, one `Decision` out: what each outcome means, the
exit code of every task (matrix, check, series, bisect, nightly) and the words every report prints."""
