"""The transactional outbox: events written in the business transaction, for the relay to carry."""
