"""Teaching the classifier new actions from clips a user adds (the `serve` app's Teach page)."""
