"""Analyses built on the methods: completeness, the path, convergence, axioms, metrics."""
