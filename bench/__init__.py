"""The benchmark harness: seeding, the floor app, wrk scripts and the runner (README.md)."""
