"""GRU4Rec side by side: the official PyTorch GRU4Rec run on the standard protocol's files (see run.sh)."""
