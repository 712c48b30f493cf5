"""What goes into a model: bundled data, user images, input spaces, baselines."""
