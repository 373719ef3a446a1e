"""berth-scheduler: scheduled cleanup and batch scoring, run by one systemd service.

Never start these jobs inside Gunicorn workers: every worker would run every job.
"""
