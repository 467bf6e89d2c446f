"""Pipeline components TFX does not ship: the MovieLens ExampleGen, the validation gate,
the atomic Pusher and the lineage-reading resolver strategies."""
