"""The compatibility sweep: two sides and their inventories in, every device migrated in
groups on every machine type, placement, action and direction, one Cell per answer out."""
