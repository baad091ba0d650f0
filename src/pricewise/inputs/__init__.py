"""Raw listing files in any format Kaggle ships, and the Kaggle download, in; checked table sources out."""
