"""`create_pipeline(config)`, its configuration, the local runner, and the readers of ML
Metadata and run results."""
