"""goforkpy's pytest plugin's workings (the plugin is ``goforkpy.pytest_plugin``)."""
