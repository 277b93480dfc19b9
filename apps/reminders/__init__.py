"""reminders: schedules the reminders of tasks and fires them on time, exactly once in effect."""
