"""State: the tasks table, its repository, migrations and the task events on Redis."""
