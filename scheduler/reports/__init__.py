"""What the ledger tells the couple and their operators: streaks (:mod:`.streaks`), the
calendar feed (:mod:`.calendar`) and ``tend status`` (:mod:`.status`)."""
