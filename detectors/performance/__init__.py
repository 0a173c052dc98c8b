"""Model performance: realized metrics from labels and label-free estimates (CBPE, DLE)."""
