"""Running test cases: templating here; the step engine, pytest plugin and CLI build on it."""
