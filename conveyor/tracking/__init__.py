"""Experiment tracking: the service layer over both stores, the client and the fluent API."""
