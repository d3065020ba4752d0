"""The quartier command: the embedded stack for development and tests, and operator tasks."""
