"""E-mail the site sends, recorded in PostgreSQL with the change that calls for it, then sent."""
