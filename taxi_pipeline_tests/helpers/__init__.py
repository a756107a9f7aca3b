"""The tests' harness: loopback servers and mirrors, the emulators behind a recording proxy and
BigQuery's documented rules, ZetaSQL, PostgreSQL, a Docker engine, the bad inputs every target
must refuse, and the helpers that load a month through the real assets."""
