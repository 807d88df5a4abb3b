"""The store and everything else that speaks SQL: ORM tables, migrations, browser sessions, the
failed-token count, and riding out a database restart."""
