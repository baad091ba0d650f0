"""The parts of validating a batch: row rules, batch profile and checks, and the reports."""
