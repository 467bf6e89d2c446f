"""The pipeline on Vertex AI Pipelines and Kubeflow Pipelines: compile, parameters, schedule."""
