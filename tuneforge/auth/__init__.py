"""Who may call the API: access keys tuneforge issues (keys.py) and the log of mutating calls (audit.py)."""
