pytest_plugins = ["tests.vps.plugin"]
