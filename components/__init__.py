"""Pipeline components TFX does not ship: the ExampleGen of a dataset spec, the validation gate,
the atomic Pusher and the lineage-reading resolver strategies."""
