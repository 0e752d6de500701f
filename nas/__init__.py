"""nas package."""
