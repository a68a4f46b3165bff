"""Tests of the convenant: loading and validating the agreement file."""
