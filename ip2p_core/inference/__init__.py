"""The maths of an edit, host-free: dual guidance, scale schedules, framing, masks, colour."""
