"""Periodic jobs (notifications, reminders, retention, outbound retries). None yet."""
