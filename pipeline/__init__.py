"""`create_pipeline(config)`, its configuration, and the local runner and CLI."""
