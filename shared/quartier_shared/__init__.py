"""Code every Quartier service shares: event contracts first, then the plumbing around them."""
