"""Offline data work: ``histories`` (contract-v1 event files to per-user model input), ``trivago`` (the trivago
RecSys 2019 importer), ``demo`` (reproducible generated traffic)."""
