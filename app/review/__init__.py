"""Review: the one-keystroke good/bad queue for a team."""
