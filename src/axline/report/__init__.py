"""Reports the plant keeps: the shift handover report (built from the historian, kept in the event log)."""
