"""Reports generated from results: junit.xml (machines), and the grid for people."""
