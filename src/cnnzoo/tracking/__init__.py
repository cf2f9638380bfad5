"""MLflow: the run client, the model registry's rules, the team server, the UI browser check."""
