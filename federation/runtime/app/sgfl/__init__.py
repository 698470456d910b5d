"""SynthGate federated logistic regression (a Flower App)."""
