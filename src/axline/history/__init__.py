"""History beyond the live view: tables for export (CSV, Excel)."""
