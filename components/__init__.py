"""Pipeline components TFX does not ship: the ExampleGen of a dataset spec, the schema of the
spec, the validation gate and its drift baseline, the atomic Pusher, the model in
production, and the Trainer and Evaluator that read "nothing in production" as no input."""
