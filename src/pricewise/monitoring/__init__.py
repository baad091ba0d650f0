"""What monitoring compares and computes: windows and references, drift descriptors and reports, accuracy figures."""
