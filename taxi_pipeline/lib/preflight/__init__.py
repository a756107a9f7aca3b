"""`preflight`: checks a real GCP project before the first load (see `run`)."""
