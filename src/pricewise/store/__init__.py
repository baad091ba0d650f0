"""Everything that reads or writes state: the warehouse, MLflow, the prediction log, the decision tables."""
