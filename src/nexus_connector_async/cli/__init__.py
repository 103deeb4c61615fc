"""The `nexus-connector` command line (also `python -m nexus_connector_async`)."""
