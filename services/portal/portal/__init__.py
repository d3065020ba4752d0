"""The staff portal: sign-in, the start page per role, the actor registry and its CSV import."""
