"""The actors service: who takes part in each district's integration work."""
