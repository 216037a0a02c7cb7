"""The Django site: users sign up and act; every action is written to the outbox."""
