"""Tables: Arrow schemas with a primary key, stored in the database's catalog."""
