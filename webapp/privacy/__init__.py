"""Personal data's lifecycle: erasing a deleted account's events from everywhere they are kept."""
