"""Model versions: what was trained, where its artifact is, which one is active."""
