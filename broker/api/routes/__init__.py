"""One router per area of contract.md."""
