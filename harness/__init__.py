"""What the tests and the benchmarks both need to drive a real gatecast: a server process on a free port, a
memory cgroup, a Redis server, headless Chromium, HTTP abuse probes and load generators. Neither tests/ nor
bench/ imports the other; both import this package (it is not installed with gatecast)."""
