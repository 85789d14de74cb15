"""The test kit shared by the unit tests and the Molecule scenarios' verifiers."""
