"""What a ritual is: schedules, time zones, decks, messages. Pure: time is a parameter."""
