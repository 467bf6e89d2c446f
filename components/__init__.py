"""Pipeline components TFX does not ship: the MovieLens ExampleGen, the validation gate and
its drift baseline, the atomic Pusher, the model in production, and the Trainer and
Evaluator that read "nothing in production" as no input."""
