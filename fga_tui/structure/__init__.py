"""Crystal graphs, atom features and symmetry (numpy; no torch, no DGL)."""
