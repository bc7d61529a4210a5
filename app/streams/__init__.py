"""Live feeds: a stream remembers the recent readings of one sensor, so a client sends each new reading alone and gets
back the updated forecast and whether that reading was abnormal.

    feeds     creates, reads and appends (compare-and-set rounds on the store)
    state     the stored record and the id rules
    judge     an append's work: forecasts, anomaly flags, scores, adaptive widths
    adaptive  interval widths that keep their coverage on data unlike the model's
    render    the answer and the per-model counters
    store     the state's home: SQLite in the state folder, or Redis for several replicas
"""
