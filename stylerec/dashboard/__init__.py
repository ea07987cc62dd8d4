"""The merchandiser's dashboard in the admin: its page, the reads behind it, its charts."""
