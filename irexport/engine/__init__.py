"""TensorRT engines: recipes, optimization profiles, the build, and the build's record that runtimes check."""
