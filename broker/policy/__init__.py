"""Policy: Rego decides what may flow; Python passes facts in and applies the result."""
