"""What a partner did: one path for done, skip, snooze, pause, resume, opt-out and opt-in
(:mod:`.acts`), what a reply is about (:mod:`.targets`), the words of every answer
(:mod:`.wording`), and replies by SMS and ``tend reply`` (:mod:`.replies`)."""
