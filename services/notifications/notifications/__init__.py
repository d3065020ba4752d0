"""The notifications service: invitation e-mails with calendar files, and their delivery record."""
