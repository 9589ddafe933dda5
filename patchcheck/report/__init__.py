"""Reports: results and a `Decision` in, the files people and machines read out: results.json,
junit.xml, summary.md, index.html; and shards merged into one run."""
