"""The register-semantics probe: builds and a scenario's `RegisterSet` in, each bit's behaviour
per build and machine type out, compared across builds and held against the specification."""
