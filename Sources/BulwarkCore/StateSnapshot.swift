/// Snapshots of the whole key-value state at a height: canonical bytes (keys and clients
/// sorted), so two replicas with the same state write the same snapshot. Key histories stay in
/// the history store; a snapshot holds each key's newest position in it and the store's end,
/// so it is usable only with a store that holds at least that much of the same history.
