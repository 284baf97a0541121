"""Repository-root conftest: enables pytester for the plugin's own tests (tests/plugin/).

Why here: `pytest_plugins` is only allowed in the rootdir's conftest.
"""

pytest_plugins = ["pytester"]
