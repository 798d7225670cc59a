"""Events worth keeping: chosen from detections, logged durably in SQLite, synced in batches."""
