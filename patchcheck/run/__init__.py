"""Running a matrix: settings and builds in, `RunResults` and reports out: the plan of cases, their
schedule, each migration judged from the destination QEMU, resume, and the run's steps in order."""
