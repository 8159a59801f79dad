"""State: the tasks table, its repository and migrations (task events on Redis pub/sub live
in tasks/events.py and tasks/event_hub.py)."""
