"""People who use the site: sign-up, sign-in, sign-out."""
