"""The request path: what a personalized page reads, chooses and logs."""
