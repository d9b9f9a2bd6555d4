"""The worker placeholder."""
